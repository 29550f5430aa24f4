"""Webhook endpoints, Standard Webhooks signing, one delivery attempt, and the retry policy.

What is decided here: the config users write (``webhooks:`` / ``outbox:``), how a body is
signed (https://www.standardwebhooks.com: ``v1,`` + base64 HMAC-SHA256 of
``{webhook-id}.{timestamp}.{body}`` keyed by the base64-decoded ``whsec_`` secret), and what
an HTTP outcome means: 2xx delivered; timeouts, connection errors, 408/425/429/5xx retried
with exponential backoff and jitter (``Retry-After`` honoured); any other status (4xx, 3xx:
redirects are not followed) dead-lettered at once, because retrying cannot fix it.
The outbox (``connectors.outbox``) owns durability and scheduling of attempts.
"""

from __future__ import annotations

import base64
import binascii
import email.utils
import fnmatch
import functools
import hashlib
import hmac
import logging
import os
import random
import re
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import httpx
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    FilePath,
    PositiveFloat,
    SecretStr,
    field_validator,
    model_validator,
)

from callsense.connectors.endpoint import AttemptResult, Message, Outcome, RouteContext
from callsense.connectors.routing_config import RouteTarget
from callsense.connectors.templates import PayloadTemplate, load_template
from callsense.core.errors import ConfigError
from callsense.rules.model import Decision

__all__ = [
    "ACTIONS",
    "DEFAULT_RETRY_SCHEDULE_S",
    "OutboxSettings",
    "RetryPolicy",
    "WebhookEndpoint",
    "WebhooksConfig",
    "decode_secret",
    "parse_retry_after",
    "send_once",
    "sign",
    "signature_headers",
]

log = logging.getLogger(__name__)

ACTIONS = ("escalate", "mark", "tag", "route", "webhook", "reply")
Action = Literal["escalate", "mark", "tag", "route", "webhook", "reply"]
# The Standard Webhooks example schedule: 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 14 h, 20 h, 24 h.
DEFAULT_RETRY_SCHEDULE_S: tuple[float, ...] = (
    5,
    300,
    1800,
    7200,
    18000,
    36000,
    50400,
    72000,
    86400,
)
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_RETRYABLE_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})
_SECRET_HINT = (
    "expected whsec_ followed by base64 of 24-64 random bytes, e.g. "
    "python -c \"import base64,os; print('whsec_'+base64.b64encode(os.urandom(32)).decode())\""
)


def expand_env(value: str) -> str:
    """Replace ``${NAME}`` with the environment variable; a missing one is a config error."""

    def repl(m: re.Match[str]) -> str:
        name = m.group(1)
        if name not in os.environ:
            raise ValueError(f"environment variable {name} is not set")
        return os.environ[name]

    return _ENV_REF.sub(repl, value)


def decode_secret(secret: str) -> bytes:
    """``whsec_<base64>`` -> the HMAC key bytes (ValueError if it is not that)."""
    if not secret.startswith("whsec_"):
        raise ValueError(f"secret must start with whsec_; {_SECRET_HINT}")
    raw = secret[len("whsec_") :]
    try:
        key = base64.b64decode(raw + "=" * (-len(raw) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"secret is not valid base64 after whsec_; {_SECRET_HINT}") from None
    if not 24 <= len(key) <= 64:
        raise ValueError(f"secret decodes to {len(key)} bytes; {_SECRET_HINT}")
    return key


def sign(key: bytes, webhook_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` value for one attempt."""
    mac = hmac.new(key, f"{webhook_id}.{timestamp}.".encode() + body, hashlib.sha256)
    return "v1," + base64.b64encode(mac.digest()).decode("ascii")


def signature_headers(
    key: bytes, webhook_id: str, body: bytes, timestamp: int | None = None
) -> dict[str, str]:
    """The three Standard Webhooks headers; the timestamp is the attempt's, not the event's."""
    ts = int(time.time()) if timestamp is None else timestamp
    return {
        "webhook-id": webhook_id,
        "webhook-timestamp": str(ts),
        "webhook-signature": sign(key, webhook_id, ts, body),
    }


class RetryPolicy(BaseModel):
    """When to try again: ``schedule_s[n]`` seconds after failed attempt n+1, +/- jitter."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    schedule_s: list[PositiveFloat] = Field(
        default_factory=lambda: list(DEFAULT_RETRY_SCHEDULE_S), min_length=1
    )
    max_attempts: int | None = Field(default=None, ge=1)
    jitter: float = Field(default=0.2, ge=0, le=1)
    max_retry_after_s: PositiveFloat = 86400

    @property
    def attempts(self) -> int:
        """Total attempts before dead-lettering (first try included)."""
        return self.max_attempts or len(self.schedule_s) + 1

    def delay(self, failed_attempts: int, retry_after_s: float | None = None) -> float:
        """Seconds to wait after ``failed_attempts`` failures; a longer receiver hint wins."""
        base = self.schedule_s[min(failed_attempts, len(self.schedule_s)) - 1]
        delay = base * random.uniform(1 - self.jitter, 1 + self.jitter)
        if retry_after_s is not None:
            delay = max(delay, min(retry_after_s, self.max_retry_after_s))
        return delay


class WebhookEndpoint(BaseModel):
    """One receiver. The minimal form is ``name, url, secret, actions``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,100}$")
    url: str
    secret: SecretStr
    actions: list[Action] | None = None
    rules: list[str] | None = None
    timeout_s: PositiveFloat = 15.0
    retry: RetryPolicy = Field(default_factory=RetryPolicy)
    template: str = "generic"
    template_vars: dict[str, Any] = Field(default_factory=dict)
    method: Literal["POST", "PUT", "PATCH"] = "POST"
    headers: dict[str, str] = Field(default_factory=dict)
    verify_tls: bool = True
    ca_file: FilePath | None = None

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        value = expand_env(value)
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https"):
            raise ValueError(f"url must be http:// or https:// (got scheme {parts.scheme!r})")
        if not parts.hostname:
            raise ValueError("url has no host")
        try:
            httpx.URL(value)
            _ = parts.port
        except (httpx.InvalidURL, ValueError) as exc:
            raise ValueError(f"url is not valid: {exc}") from None
        return value

    @field_validator("headers")
    @classmethod
    def _expand_headers(cls, value: dict[str, str]) -> dict[str, str]:
        reserved = {k for k in value if k.lower().startswith("webhook-")}
        if reserved:
            raise ValueError(f"headers may not set {sorted(reserved)}; callsense signs those")
        return {k: expand_env(v) for k, v in value.items()}

    @field_validator("template")
    @classmethod
    def _template_exists(cls, value: str) -> str:
        try:
            load_template(value)
        except ConfigError as exc:
            raise ValueError(str(exc)) from None
        return value

    @field_validator("rules")
    @classmethod
    def _rules_not_empty(cls, value: list[str] | None) -> list[str] | None:
        if value is not None and not value:
            raise ValueError("an empty list matches nothing; leave rules out to receive all")
        return value

    @model_validator(mode="after")
    def _check_secret_and_template(self) -> WebhookEndpoint:
        # checked here, not in a field validator: pydantic would quote a bad secret's value
        # in the error ("got ..."), and config errors end up in terminals and CI logs
        try:
            expanded = expand_env(self.secret.get_secret_value())
            decode_secret(expanded)
        except ValueError as exc:
            raise ValueError(f"secret: {exc}") from None
        object.__setattr__(self, "secret", SecretStr(expanded))
        load_template(self.template).check(self.template_vars)
        if self.ca_file is not None and not self.url.startswith("https://"):
            raise ValueError("ca_file is set but the url is not https://")
        return self

    @property
    def key(self) -> bytes:
        return decode_secret(self.secret.get_secret_value())

    @functools.cached_property
    def compiled_template(self) -> PayloadTemplate:
        """Loaded once per endpoint, not per decision."""
        return load_template(self.template)

    def wants(self, decision: Decision) -> bool:
        """Does this endpoint receive ``decision`` (its actions and rules filters)?

        A policy's ``webhook: {endpoint: NAME}`` action goes to that endpoint only.
        """
        if decision.action == "webhook":
            named = decision.params.get("endpoint")
            if named and named != self.name:
                return False
        if self.actions is not None and decision.action not in self.actions:
            return False
        if self.rules is not None:
            return any(fnmatch.fnmatchcase(decision.rule, pat) for pat in self.rules)
        return True

    def tls_verify(self) -> bool | str:
        if self.ca_file is not None:
            return str(self.ca_file)
        return self.verify_tls

    def message(
        self,
        decision: Mapping[str, Any],
        context: RouteContext,
        *,
        webhook_id: str,
        decision_id: str,
        enqueued_at: str,
    ) -> Message:
        """The body the receiver gets: the decision through this endpoint's template."""
        tpl = self.compiled_template
        body = tpl.render(
            decision,
            webhook_id=webhook_id,
            decision_id=decision_id,
            enqueued_at=enqueued_at,
            vars=self.template_vars,
        )
        return Message(body, tpl.spec.content_type)

    def sender(self, concurrency: int) -> WebhookSender:
        return WebhookSender(self, concurrency)


class WebhookSender:
    """One delivery round's pooled HTTP client for one webhook endpoint."""

    def __init__(self, endpoint: WebhookEndpoint, concurrency: int) -> None:
        self.endpoint = endpoint
        self.client = httpx.AsyncClient(
            verify=endpoint.tls_verify(),
            limits=httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency),
        )

    async def send(self, webhook_id: str, payload: str, content_type: str) -> AttemptResult:
        return await send_once(
            self.client, self.endpoint, webhook_id, payload.encode(), content_type=content_type
        )

    async def aclose(self) -> None:
        await self.client.aclose()


class OutboxSettings(BaseModel):
    """Where the outbox lives and how long one-shot commands wait for deliveries."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    db_url: str | None = None
    deadline_s: float = Field(default=30.0, ge=0)
    lease_s: PositiveFloat = 60.0
    concurrency: int = Field(default=16, ge=1, le=512)
    retention_days: PositiveFloat = 30.0


class WebhooksConfig(BaseModel):
    """What leaves through the outbox: the ``webhooks:``, ``outbox:``, ``routing:`` and
    ``routing_default:`` keys of ``configs/callsense.yaml``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    webhooks: list[WebhookEndpoint] = Field(default_factory=list)
    outbox: OutboxSettings = Field(default_factory=OutboxSettings)
    routing: list[RouteTarget] = Field(default_factory=list)
    routing_default: str | None = None

    @model_validator(mode="after")
    def _known_default(self) -> WebhooksConfig:
        names = {t.name for t in self.routing}
        if self.routing_default is not None and self.routing_default not in names:
            raise ValueError(f"routing_default {self.routing_default!r} is not a routing target")
        return self

    def endpoints(self) -> list[Any]:
        """Every outbox endpoint: the webhooks, then one per routing target."""
        from callsense.connectors.route_delivery import route_endpoints
        from callsense.connectors.routing_config import RoutingConfig

        routing = RoutingConfig(routing=self.routing, default_target=self.routing_default)
        return [*self.webhooks, *route_endpoints(routing)]

    @field_validator("webhooks")
    @classmethod
    def _unique_names(cls, value: list[WebhookEndpoint]) -> list[WebhookEndpoint]:
        seen: set[str] = set()
        for ep in value:
            if ep.name in seen:
                raise ValueError(f"two endpoints are named {ep.name!r}; names must be unique")
            seen.add(ep.name)
        return value

    @classmethod
    def from_file(cls, path: str | Path) -> WebhooksConfig:
        """Read only the delivery keys from a config file that may hold other keys."""
        from callsense.core.yamlsource import load_yaml, validate_data

        src = load_yaml(path)
        data = src.data if isinstance(src.data, dict) else {}
        keys = ("webhooks", "outbox", "routing", "routing_default")
        src.data = {k: data[k] for k in keys if k in data}
        return validate_data(cls, src)


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """``Retry-After`` as seconds (delta-seconds or an HTTP-date); None if absent or garbage."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def classify(status: int, headers: httpx.Headers) -> AttemptResult:
    if 200 <= status < 300:
        return AttemptResult(Outcome.DELIVERED, status)
    retry_after = parse_retry_after(headers.get("retry-after"))
    if status in _RETRYABLE_STATUS or status >= 500:
        return AttemptResult(Outcome.RETRY, status, f"HTTP {status}", retry_after)
    if 300 <= status < 400:
        return AttemptResult(
            Outcome.DEAD, status, f"HTTP {status} redirect not followed; update the url"
        )
    if status == 410:
        return AttemptResult(Outcome.DEAD, status, "HTTP 410 Gone: the receiver refuses these")
    return AttemptResult(Outcome.DEAD, status, f"HTTP {status}: not retryable")


async def send_once(
    client: httpx.AsyncClient,
    endpoint: WebhookEndpoint,
    webhook_id: str,
    body: bytes,
    *,
    content_type: str = "application/json",
    key: bytes | None = None,
) -> AttemptResult:
    """One signed attempt; never raises for network faults, they become ``RETRY``."""
    headers = {
        **endpoint.headers,
        "content-type": content_type,
        "user-agent": "callsense-webhooks/1",
        **signature_headers(key or endpoint.key, webhook_id, body),
    }
    try:
        resp = await client.request(
            endpoint.method,
            endpoint.url,
            content=body,
            headers=headers,
            timeout=endpoint.timeout_s,
            follow_redirects=False,
        )
    except httpx.TimeoutException as exc:
        return AttemptResult(Outcome.RETRY, None, f"timeout ({type(exc).__name__})")
    except httpx.TransportError as exc:
        return AttemptResult(Outcome.RETRY, None, f"{type(exc).__name__}: {_short(exc)}")
    return classify(resp.status_code, resp.headers)


def _short(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) <= 200 else text[:197] + "..."
