"""Routing adapters: a ``route`` decision moves the live call in the contact-center platform.

Each adapter turns a decision into one vendor HTTP request, built from the vendor's public
API docs; ``base_url`` is configurable so tests (and private clouds) can point it elsewhere.
Credentials are read from environment variables named in the config, at send time, and
never logged or stored.

- Twilio: ``POST /2010-04-01/Accounts/{AccountSid}/Calls/{CallSid}.json`` form-encoded
  ``Twiml=<Response><Enqueue>queue</Enqueue></Response>`` (or ``<Dial>number</Dial>``), basic
  auth AccountSid:AuthToken.
- Amazon Connect: ``UpdateContactAttributes`` = ``POST /contact/attributes`` JSON
  ``{InstanceId, InitialContactId, Attributes}`` signed with AWS SigV4 (service ``connect``);
  the contact flow branches on the attributes.
- Genesys Cloud: ``PATCH /api/v2/conversations/calls/{conversationId}/participants/
  {participantId}/attributes`` JSON ``{"attributes": {...}}`` with a Bearer token: a ready
  one, or one from the OAuth Client Credentials grant (``POST {login}/oauth/token``, basic
  auth client id:secret, ``grant_type=client_credentials``).
- Generic HTTP: the decision as JSON to a URL.

Decision ``params`` a route carries: ``target`` (which configured target), ``queue`` or
``number`` (Twilio), ``attributes`` (dict of strings), and the platform's ids
(``call_sid``, ``contact_id``, ``conversation_id``, ``participant_id``; the call id is used
when the platform id is not given).
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from abc import ABC, abstractmethod
from base64 import b64encode
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Literal
from urllib.parse import quote
from xml.sax.saxutils import escape

import httpx
from pydantic import BaseModel, ConfigDict, Field, PositiveFloat, field_validator

from callsense.core.errors import ConfigError, InputError, RetryableError

__all__ = [
    "ADAPTERS",
    "AmazonConnectAdapter",
    "AmazonConnectTarget",
    "Capabilities",
    "GenesysAdapter",
    "GenesysTarget",
    "HttpAdapter",
    "HttpTarget",
    "RouteTarget",
    "RoutingAdapter",
    "RoutingConfig",
    "TwilioAdapter",
    "TwilioTarget",
    "adapter_for",
    "route_decision",
]

log = logging.getLogger(__name__)


class _Target(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,100}$")
    timeout_s: PositiveFloat = 10.0

    @field_validator("base_url", "url", "login_url", check_fields=False)
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return value.rstrip("/") if value else value


class TwilioTarget(_Target):
    kind: Literal["twilio"]
    base_url: str = "https://api.twilio.com"
    account_sid_env: str = "TWILIO_ACCOUNT_SID"
    auth_token_env: str = "TWILIO_AUTH_TOKEN"


class AmazonConnectTarget(_Target):
    kind: Literal["amazon_connect"]
    region: str = Field(pattern=r"^[a-z]{2}(-[a-z]+)+-\d$")
    instance_id: str
    base_url: str | None = None
    access_key_id_env: str = "AWS_ACCESS_KEY_ID"
    secret_access_key_env: str = "AWS_SECRET_ACCESS_KEY"
    session_token_env: str = "AWS_SESSION_TOKEN"


class GenesysTarget(_Target):
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


class HttpTarget(_Target):
    kind: Literal["http"]
    url: str
    method: Literal["POST", "PUT", "PATCH"] = "POST"
    bearer_token_env: str | None = None


RouteTarget = Annotated[
    TwilioTarget | AmazonConnectTarget | GenesysTarget | HttpTarget, Field(discriminator="kind")
]


class RoutingConfig(BaseModel):
    """The ``routing:`` key of ``configs/callsense.yaml``: named targets."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    routing: list[RouteTarget] = Field(default_factory=list)
    default_target: str | None = None


@dataclass(frozen=True, slots=True)
class Capabilities:
    transfer: bool
    attributes: bool


def _env(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        raise ConfigError(f"environment variable {name} is not set (routing credentials)")
    return value


def _attributes(params: Mapping[str, Any], decision: Mapping[str, Any]) -> dict[str, str]:
    attrs = params.get("attributes")
    if attrs is None:
        attrs = {
            "callsense_action": "route",
            "callsense_rule": decision.get("rule", ""),
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
    def build_request(self, decision: Mapping[str, Any]) -> httpx.Request:
        """The vendor request that carries out ``decision`` (credentials from the env)."""

    def authorize(self, client: httpx.Client, *, renew: bool = False) -> bool:
        """Get what ``build_request`` needs to sign in (most platforms: nothing).

        Returns whether a rejected request (401) is worth one more try with ``renew``.
        """
        return False

    def send(self, decision: Mapping[str, Any], client: httpx.Client) -> int:
        """Send; return the status. 5xx/429/network are ``RetryableError``, 4xx ``InputError``."""
        renewable = self.authorize(client)
        response = self._send(self.build_request(decision), client)
        if response.status_code == 401 and renewable:
            # an access token revoked or expired early: sign in again, once
            self.authorize(client, renew=True)
            response = self._send(self.build_request(decision), client)
        status = response.status_code
        log.info("route %s call %s: HTTP %s", self.target.name, decision.get("call_id"), status)
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


class TwilioAdapter(RoutingAdapter):
    capabilities = Capabilities(transfer=True, attributes=False)
    target: TwilioTarget

    def build_request(self, decision: Mapping[str, Any]) -> httpx.Request:
        params = decision.get("params") or {}
        if params.get("queue"):
            twiml = f"<Response><Enqueue>{escape(str(params['queue']))}</Enqueue></Response>"
        elif params.get("number"):
            twiml = f"<Response><Dial>{escape(str(params['number']))}</Dial></Response>"
        else:
            raise InputError("a Twilio route needs params.queue or params.number")
        sid = _env(self.target.account_sid_env)
        token = _env(self.target.auth_token_env)
        call_sid = str(params.get("call_sid") or decision["call_id"])
        url = (
            f"{self.target.base_url}/2010-04-01/Accounts/{quote(sid, safe='')}"
            f"/Calls/{quote(call_sid, safe='')}.json"
        )
        return httpx.Request(
            "POST",
            url,
            data={"Twiml": twiml},
            headers={"Authorization": "Basic " + b64encode(f"{sid}:{token}".encode()).decode()},
            extensions={"timeout": httpx.Timeout(self.target.timeout_s).as_dict()},
        )


class AmazonConnectAdapter(RoutingAdapter):
    capabilities = Capabilities(transfer=False, attributes=True)
    target: AmazonConnectTarget

    def build_request(self, decision: Mapping[str, Any]) -> httpx.Request:
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest
        from botocore.credentials import Credentials

        params = decision.get("params") or {}
        base = self.target.base_url or f"https://connect.{self.target.region}.amazonaws.com"
        body = json.dumps(
            {
                "InstanceId": self.target.instance_id,
                "InitialContactId": str(params.get("contact_id") or decision["call_id"]),
                "Attributes": _attributes(params, decision),
            }
        ).encode()
        creds = Credentials(
            _env(self.target.access_key_id_env),
            _env(self.target.secret_access_key_env),
            os.environ.get(self.target.session_token_env) or None,
        )
        aws = AWSRequest(
            method="POST",
            url=f"{base}/contact/attributes",
            data=body,
            headers={"Content-Type": "application/json"},
        )
        SigV4Auth(creds, "connect", self.target.region).add_auth(aws)
        return httpx.Request(
            "POST",
            aws.url,
            content=body,
            headers=dict(aws.headers.items()),
            extensions={"timeout": httpx.Timeout(self.target.timeout_s).as_dict()},
        )


class _GenesysTokens:
    """Access tokens from Genesys Cloud's Client Credentials grant, shared by the process
    and renewed a minute before they expire (Genesys issues them for about a day)."""

    RENEW_BEFORE_S = 60.0

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tokens: dict[tuple[str, str], tuple[str, float]] = {}

    def get(self, target: GenesysTarget, client: httpx.Client, *, renew: bool = False) -> str:
        client_id, secret = _env(target.client_id_env), _env(target.client_secret_env)
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

    def build_request(self, decision: Mapping[str, Any]) -> httpx.Request:
        params = decision.get("params") or {}
        conversation = str(params.get("conversation_id") or decision["call_id"])
        participant = params.get("participant_id")
        if not participant:
            raise InputError("a Genesys route needs params.participant_id")
        url = (
            f"{self.target.base_url}/api/v2/conversations/calls/{quote(conversation, safe='')}"
            f"/participants/{quote(str(participant), safe='')}/attributes"
        )
        return httpx.Request(
            "PATCH",
            url,
            json={"attributes": _attributes(params, decision)},
            headers={"Authorization": f"Bearer {self._bearer or _env(self.target.token_env)}"},
            extensions={"timeout": httpx.Timeout(self.target.timeout_s).as_dict()},
        )


class HttpAdapter(RoutingAdapter):
    capabilities = Capabilities(transfer=True, attributes=True)
    target: HttpTarget

    def build_request(self, decision: Mapping[str, Any]) -> httpx.Request:
        headers = {"content-type": "application/json"}
        if self.target.bearer_token_env:
            headers["authorization"] = f"Bearer {_env(self.target.bearer_token_env)}"
        return httpx.Request(
            self.target.method,
            self.target.url,
            content=json.dumps(dict(decision), default=str).encode(),
            headers=headers,
            extensions={"timeout": httpx.Timeout(self.target.timeout_s).as_dict()},
        )


ADAPTERS: dict[str, type[RoutingAdapter]] = {
    "twilio": TwilioAdapter,
    "amazon_connect": AmazonConnectAdapter,
    "genesys": GenesysAdapter,
    "http": HttpAdapter,
}


def adapter_for(target: BaseModel) -> RoutingAdapter:
    return ADAPTERS[target.kind](target)  # type: ignore[attr-defined]


def route_decision(
    decision: Mapping[str, Any], config: RoutingConfig, client: httpx.Client | None = None
) -> int:
    """Carry out one ``route`` decision on its target (``params.target`` or the default)."""
    params = decision.get("params") or {}
    name = params.get("target") or config.default_target
    if name is None and len(config.routing) == 1:
        name = config.routing[0].name
    targets = {t.name: t for t in config.routing}
    if name not in targets:
        raise InputError(f"route target {name!r} is not configured (have {sorted(targets)})")
    adapter = adapter_for(targets[name])
    if client is not None:
        return adapter.send(decision, client)
    with httpx.Client() as own:
        return adapter.send(decision, own)
