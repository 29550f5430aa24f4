"""Genesys Cloud: AudioHook in (``WS /v1/audiohook``, protocol version 2, as a monitor),
participant attributes out (the conversations API).

AudioHook: text frames are JSON messages with ``version``, ``type``, ``id`` (the session),
``seq`` (each side counts its own messages from 1) and the last seq seen from the other
side (``serverseq`` in the client's, ``clientseq`` in ours). The client opens with
``open``, offering media; we answer ``opened`` choosing PCMU 8 kHz, preferring the stereo
offer (channels ``external`` = customer, ``internal`` = agent, interleaved in binary
frames). ``ping`` gets ``pong``; ``close`` gets ``closed``; ``paused``/``resumed``/
``update``/``discarded``/``error`` from the client are noted. A protocol violation gets a
``disconnect`` (reason ``error``) and the socket closes; the call keeps what it received.

Routing: ``PATCH /api/v2/conversations/calls/{conversationId}/participants/
{participantId}/attributes`` JSON ``{"attributes": {...}}`` with a Bearer token: a ready
one, or one from the OAuth Client Credentials grant (``POST {login}/oauth/token``, basic
auth client id:secret, ``grant_type=client_credentials``). The conversation and the
participant come from the AudioHook ``open``.
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
from fastapi import APIRouter, WebSocket
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from callsense.connectors.endpoint import RouteContext
from callsense.connectors.live.connection import (
    Audio,
    EndCall,
    OpenCall,
    Reply,
    StreamEvent,
    StreamParser,
    json_object,
    serve,
    validated,
)
from callsense.connectors.live.session import CLOSE_UNSUPPORTED, ProtocolError, admitted
from callsense.connectors.routing import Capabilities, RoutingAdapter, TargetBase, attributes, env
from callsense.core.errors import ConfigError, InputError, RetryableError
from callsense.pipeline.live import StreamFormat
from callsense.rules.model import Decision

__all__ = ["ROLES", "AudioHook", "GenesysAdapter", "GenesysTarget", "router"]

log = logging.getLogger(__name__)

router = APIRouter(tags=["live"])

ROLES = {"external": "customer", "internal": "agent"}
_CLIENT_NOTES = {"paused", "resumed", "update", "discarded", "error", "dtmf"}


class _Media(BaseModel):
    model_config = ConfigDict(extra="allow")

    type: str
    format: str
    channels: list[str] = Field(min_length=1)
    rate: int


class _Message(BaseModel):
    model_config = ConfigDict(extra="allow")

    version: Literal["2"]
    type: str
    id: str = Field(min_length=1, max_length=128)
    seq: int = Field(ge=1)
    serverseq: int | None = None
    parameters: dict[str, Any] = Field(default_factory=dict)


class AudioHook(StreamParser):
    """The protocol state of one AudioHook connection, as data."""

    name = "audiohook"
    protocol = "audiohook"
    ended_early = "connection ended without close"

    def __init__(self) -> None:
        self.id: str | None = None
        self.clientseq = 0
        self.seq = 0
        self.media: _Media | None = None

    def parse(self, text: str | None, data: bytes | None) -> list[StreamEvent]:
        if data is not None and self.id is not None:
            return [Audio(data)]
        msg = self.check(text)
        if msg.type == "open":
            if self.id is not None:
                raise ProtocolError("a second 'open' in one session")
            self.id = msg.id
            self.media = self.choose(list(msg.parameters.get("media") or []))
            roles = {i: ROLES[c] for i, c in enumerate(self.media.channels)}
            fmt = StreamFormat(8000, len(self.media.channels), "mulaw", roles)  # type: ignore[arg-type]
            opened = {"startPaused": False, "media": [self.media.model_dump()]}
            return [
                OpenCall(_call_id(msg.id), fmt, _genesys_ids(msg.parameters)),
                Reply(self.message("opened", opened)),
            ]
        if self.id is None:
            raise ProtocolError(f"{msg.type!r} before 'open'")
        if msg.type == "ping":
            return [Reply(self.message("pong"))]
        if msg.type == "close":
            return [EndCall((self.message("closed"),))]
        if msg.type in _CLIENT_NOTES:
            log.info("audiohook %s: client sent %s", self.id, msg.type)
            return []
        raise ProtocolError(f"unknown message type {msg.type!r}")

    def refusal(self, exc: ProtocolError) -> list[dict[str, Any]]:
        return [self.message("disconnect", {"reason": "error", "info": str(exc)[:200]})]

    def message(self, type_: str, parameters: dict[str, Any] | None = None) -> dict[str, Any]:
        """Our next message (``seq`` counts ours, ``clientseq`` acknowledges theirs)."""
        self.seq += 1
        return {
            "version": "2",
            "type": type_,
            "seq": self.seq,
            "clientseq": self.clientseq,
            "id": self.id,
            "parameters": parameters or {},
        }

    def check(self, text: str | None) -> _Message:
        if text is None:
            raise ProtocolError("binary audio before the session is open", CLOSE_UNSUPPORTED)
        msg = validated(_Message, json_object(text, "message"), "message")
        if self.id is not None and msg.id != self.id:
            raise ProtocolError(f"message for session {msg.id!r} in session {self.id!r}")
        if msg.seq != self.clientseq + 1:
            raise ProtocolError(f"seq {msg.seq} after {self.clientseq}; messages were lost")
        self.clientseq = msg.seq
        return msg

    def choose(self, offers: list[Any]) -> _Media:
        """The stereo PCMU 8 kHz offer (else a mono one); ``ProtocolError`` if none fits."""
        fits: list[_Media] = []
        for raw in offers:
            try:
                media = _Media.model_validate(raw)
            except ValidationError:
                continue
            if (media.type, media.format, media.rate) == ("audio", "PCMU", 8000) and all(
                c in ROLES for c in media.channels
            ):
                fits.append(media)
        if not fits:
            raise ProtocolError("no offered media is PCMU 8000 Hz with external/internal channels")
        return max(fits, key=lambda m: len(m.channels))


@router.websocket("/v1/audiohook")
@admitted
async def audiohook(websocket: WebSocket) -> None:
    """Genesys AudioHook monitor; see the module doc."""
    await serve(websocket, AudioHook())


def _genesys_ids(parameters: dict[str, Any]) -> RouteContext:
    """The conversation and the monitored participant, where a Genesys route acts."""
    conversation = parameters.get("conversationId")
    participant = parameters.get("participant")
    return RouteContext(
        conversation_id=conversation[:128]
        if isinstance(conversation, str) and conversation
        else None,
        participant_id=participant["id"][:128]
        if isinstance(participant, dict) and isinstance(participant.get("id"), str)
        else None,
    )


def _call_id(session_id: str) -> str:
    """The session id (a UUID per AudioHook session; one conversation may have several)."""
    cleaned = "".join(c if c.isalnum() or c in "_.:-" else "-" for c in session_id)[:120]
    return cleaned if cleaned[:1].isalnum() else f"g{cleaned}"[:128]


# --- routing -------------------------------------------------------------------------


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
