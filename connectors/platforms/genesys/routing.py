"""Genesys Cloud routing: participant attributes through the conversations API.

``PATCH /api/v2/conversations/calls/{conversationId}/participants/{participantId}/attributes``
JSON ``{"attributes": {...}}`` with a Bearer token: a ready one, or one from the OAuth Client
Credentials grant (``POST {login}/oauth/token``, basic auth client id:secret,
``grant_type=client_credentials``). The conversation and the participant come from the
AudioHook ``open``.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from base64 import b64encode
from typing import Any, Literal
from urllib.parse import quote

import httpx
from pydantic import Field

from callsense.connectors.endpoint import RouteContext
from callsense.connectors.routing import Capabilities, RoutingAdapter, TargetBase, attributes, env
from callsense.core.errors import ConfigError, InputError, RetryableError
from callsense.rules.model import Decision

__all__ = ["GenesysAdapter", "GenesysTarget"]

log = logging.getLogger(__name__)


class GenesysTarget(TargetBase):
    kind: Literal["genesys"]
    base_url: str = "https://api.mypurecloud.com"
    token_env: str = Field(
        "GENESYS_ACCESS_TOKEN", description="a ready access token; used when it is set"
    )
    client_id_env: str = Field(
        "GENESYS_CLIENT_ID", description="OAuth client (Client Credentials grant) id"
    )
    client_secret_env: str = "GENESYS_CLIENT_SECRET"
    login_url: str | None = Field(
        None,
        description="the region's login host; default: base_url with api. -> login. "
        "(https://api.mypurecloud.de -> https://login.mypurecloud.de)",
    )

    @property
    def token_url(self) -> str:
        login = self.login_url or self.base_url.replace("://api.", "://login.", 1)
        return login.rstrip("/") + "/oauth/token"


class _GenesysTokens:
    """Access tokens from Genesys Cloud's Client Credentials grant, shared by the process
    and renewed a minute before they expire (Genesys issues them for about a day)."""

    RENEW_BEFORE_S = 60.0

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tokens: dict[tuple[str, str], tuple[str, float]] = {}

    def get(self, target: GenesysTarget, client: httpx.Client, *, renew: bool = False) -> str:
        client_id, secret = env(target.client_id_env), env(target.client_secret_env)
        key = (target.token_url, client_id)
        with self._lock:  # one sign-in at a time; the others wait for its token
            cached = self._tokens.get(key)
            if cached and not renew and cached[1] - time.monotonic() > self.RENEW_BEFORE_S:
                return cached[0]
            token, lifetime = self._grant(target, client, client_id, secret)
            self._tokens[key] = (token, time.monotonic() + lifetime)
            return token

    @staticmethod
    def _grant(
        target: GenesysTarget, client: httpx.Client, client_id: str, secret: str
    ) -> tuple[str, float]:
        basic = b64encode(f"{client_id}:{secret}".encode()).decode()
        try:
            response = client.post(
                target.token_url,
                data={"grant_type": "client_credentials"},
                headers={"Authorization": f"Basic {basic}"},
                timeout=target.timeout_s,
            )
        except httpx.TransportError as exc:
            raise RetryableError(f"{target.name}: sign-in: {type(exc).__name__}") from None
        status = response.status_code
        if status >= 500 or status in (408, 429):
            raise RetryableError(f"{target.name}: sign-in: HTTP {status}")
        if status >= 400:
            raise ConfigError(
                f"{target.name}: Genesys refused the client credentials in "
                f"{target.client_id_env}/{target.client_secret_env} (HTTP {status})"
            )
        try:
            body = response.json()
            token = str(body["access_token"])
            lifetime = float(body.get("expires_in", 3600))
        except (ValueError, KeyError, TypeError):
            raise RetryableError(f"{target.name}: sign-in: unexpected answer") from None
        log.info("route %s: signed in to Genesys Cloud (token for %.0f s)", target.name, lifetime)
        return token, lifetime


_GENESYS_TOKENS = _GenesysTokens()


class GenesysAdapter(RoutingAdapter):
    """Genesys Cloud: a ready token (``token_env``), or one from the Client Credentials
    grant with ``client_id_env``/``client_secret_env``, cached until shortly before it
    expires and renewed once when the API answers 401."""

    capabilities = Capabilities(transfer=False, attributes=True)
    target: GenesysTarget

    def __init__(self, target: Any) -> None:
        super().__init__(target)
        self._bearer: str | None = None

    def authorize(self, client: httpx.Client, *, renew: bool = False) -> bool:
        ready = os.environ.get(self.target.token_env)
        if ready:
            self._bearer = ready
            return False
        if not (
            os.environ.get(self.target.client_id_env)
            and os.environ.get(self.target.client_secret_env)
        ):
            raise ConfigError(
                f"Genesys target {self.target.name}: set {self.target.token_env}, or "
                f"{self.target.client_id_env} and {self.target.client_secret_env} for the "
                "Client Credentials grant (routing credentials)"
            )
        self._bearer = _GENESYS_TOKENS.get(self.target, client, renew=renew)
        return True

    def build_request(self, decision: Decision, context: RouteContext) -> httpx.Request:
        params = decision.params
        conversation = str(
            params.get("conversation_id") or context.conversation_id or decision.call_id
        )
        participant = params.get("participant_id") or context.participant_id
        if not participant:
            raise InputError("a Genesys route needs params.participant_id")
        url = (
            f"{self.target.base_url}/api/v2/conversations/calls/{quote(conversation, safe='')}"
            f"/participants/{quote(str(participant), safe='')}/attributes"
        )
        return httpx.Request(
            "PATCH",
            url,
            json={"attributes": attributes(params, decision)},
            headers={"Authorization": f"Bearer {self._bearer or env(self.target.token_env)}"},
            extensions={"timeout": httpx.Timeout(self.target.timeout_s).as_dict()},
        )
