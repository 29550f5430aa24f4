"""Routing's common part: a ``route`` decision moves a live call in its contact-center platform.

Each platform's adapter (``connectors.platforms.*``) turns a decision into one vendor HTTP
request, built from the vendor's public API docs; ``base_url`` is configurable so tests
(and private clouds) can point it elsewhere. Credentials are read from environment
variables named in the config, at send time, and never logged or stored.

Decision ``params`` a route carries: ``target`` (which configured target), ``queue`` or
``number`` (Twilio), ``attributes`` (dict of strings), and optionally the platform's ids
(``call_sid``, ``contact_id``, ``conversation_id``, ``participant_id``); otherwise the ids
come from the live call's ``RouteContext``, and the call id is used when neither has them.
"""

from __future__ import annotations

import logging
import os
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import httpx
from pydantic import BaseModel, ConfigDict, Field, PositiveFloat, field_validator

from callsense.connectors.endpoint import RouteContext
from callsense.core.errors import ConfigError, InputError, RetryableError
from callsense.rules.model import Decision

__all__ = ["Capabilities", "RoutingAdapter", "TargetBase", "attributes", "env"]

log = logging.getLogger(__name__)


class TargetBase(BaseModel):
    """What every routing target has: a name the policies use, a timeout."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,100}$")
    timeout_s: PositiveFloat = 10.0

    @field_validator("base_url", "url", "login_url", check_fields=False)
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return value.rstrip("/") if value else value


@dataclass(frozen=True, slots=True)
class Capabilities:
    transfer: bool
    attributes: bool


def env(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        raise ConfigError(f"environment variable {name} is not set (routing credentials)")
    return value


def attributes(params: Mapping[str, Any], decision: Decision) -> dict[str, str]:
    attrs = params.get("attributes")
    if attrs is None:
        attrs = {
            "callsense_action": "route",
            "callsense_rule": decision.rule,
            "callsense_queue": params.get("queue", ""),
        }
    if not isinstance(attrs, Mapping):
        raise InputError("route params.attributes must be a mapping")
    return {str(k): str(v) for k, v in attrs.items()}


class RoutingAdapter(ABC):
    """One platform: ``build_request`` is the only thing a new platform must write."""

    capabilities: ClassVar[Capabilities]

    def __init__(self, target: Any) -> None:
        self.target = target

    @abstractmethod
    def build_request(self, decision: Decision, context: RouteContext) -> httpx.Request:
        """The vendor request that carries out ``decision`` on the call ``context`` names
        (a policy's explicit params win; credentials from the env)."""

    def authorize(self, client: httpx.Client, *, renew: bool = False) -> bool:
        """Get what ``build_request`` needs to sign in (most platforms: nothing).

        Returns whether a rejected request (401) is worth one more try with ``renew``.
        """
        return False

    def send(self, decision: Decision, context: RouteContext, client: httpx.Client) -> int:
        """Send; return the status. 5xx/429/network are ``RetryableError``, 4xx ``InputError``."""
        renewable = self.authorize(client)
        response = self._send(self.build_request(decision, context), client)
        if response.status_code == 401 and renewable:
            # an access token revoked or expired early: sign in again, once
            self.authorize(client, renew=True)
            response = self._send(self.build_request(decision, context), client)
        status = response.status_code
        log.info("route %s call %s: HTTP %s", self.target.name, decision.call_id, status)
        if status >= 500 or status in (408, 429):
            raise RetryableError(f"{self.target.name}: HTTP {status}")
        if status >= 400:
            raise InputError(f"{self.target.name}: HTTP {status} (request rejected)")
        return status

    def _send(self, request: httpx.Request, client: httpx.Client) -> httpx.Response:
        try:
            return client.send(request)
        except httpx.TransportError as exc:
            raise RetryableError(f"{self.target.name}: {type(exc).__name__}") from None
