"""Twilio: Media Streams in (``WS /v1/twilio``), call moves out (the REST API's Calls).

Stream: ``<Start><Stream track="both_tracks">`` sends JSON text messages: ``connected``,
then ``start`` (``streamSid``, ``callSid``, ``tracks``, ``mediaFormat`` audio/x-mulaw 8000
Hz mono), then ``media`` (``track`` inbound/outbound, ``chunk``, ``timestamp`` in ms from
the stream's start, ``payload`` base64 mu-law), ``dtmf``, ``mark``, and finally ``stop``.
The inbound track is the caller (customer), the outbound track what the caller hears
(agent); each becomes a channel of the call. The API key is the one that signed the
upgrade (see Signature below). The call is stored under its CallSid, which is also kept
as the call's ``call_sid`` (``GET /v1/calls/{id}``, and where its routes act); the
streamSid is not kept (nothing here acts on the stream).

Timeline: Twilio's, not the count of bytes received. Each track's chunks are placed by
their ``timestamp``, so time Twilio did not stream on a track (it skips silent outbound
packets; a network hiccup) is silence at the right place, not a shrunk call, and at
``stop`` every track runs to the end of the last chunk streamed on any: the call lasts
what the stream lasted. A track more than ``TRACK_LAG_S`` behind the other is given its
silence as the stream goes (not only when it comes back), since the call hands utterances
on in time order and would otherwise hold the caller's back, and the decisions with them,
until the agent's track speaks again. ``mark`` messages acknowledge audio a server sent
into a bidirectional stream; this service sends Twilio nothing (no audio, no marks), so
none are expected and one that comes is ignored, as ``dtmf`` is.

Signature: Twilio signs the WebSocket upgrade like its webhooks: ``X-Twilio-Signature`` is
the base64 HMAC-SHA1, keyed by the account's auth token, of the full URL it called
(scheme, host, path and query) followed by the POST parameters sorted by name, of which an
upgrade has none. With ``platform_signatures: required`` (the default) the upgrade needs a
valid signature made with the auth token stored as the API key's secret (``callsense keys
secret NAME --value-from-env TWILIO_AUTH_TOKEN``; a key holds one secret, so give Twilio a
key of its own); otherwise it is refused with 401. As twilio-python's ``RequestValidator``
does, the URL is checked as sent, without its port and with the scheme's default port
(Twilio is not consistent about the port). The URL is rebuilt as Twilio called it:
``wss://`` (Media Streams connects over ``wss`` only, so a TLS-terminating proxy in front
changes nothing and ``X-Forwarded-Proto`` is not needed), the ``Host`` header, and the path
and query as sent. ``X-Forwarded-Host`` is never honoured (a client could set it): a proxy
in front must pass ``Host`` and the path through unchanged (nginx: ``proxy_set_header Host
$host``), as for AudioHook. Webhook Rules' HMAC-SHA256 shared-key signatures
(``X-Twilio-Webhooks-Signature-Settings``) are not supported and are refused.

Twilio documents that a ``<Stream>`` URL carries no query string (custom values go in
``<Parameter>``, which arrive in ``start``, after the upgrade), and drops one: so the
upgrade needs no API key of its own. With signatures required, the key is the one whose
stored auth token verifies ``X-Twilio-Signature`` (a key sent as ``?api_key=`` or a header
is still honoured, and then must be the signer). With ``platform_signatures: off`` nothing
identifies the caller but a key in the URL or a header, which real Twilio cannot send:
turn signatures off only for test clients and proxies that add the key.

Routing: ``POST /2010-04-01/Accounts/{AccountSid}/Calls/{CallSid}.json`` form-encoded
``Twiml=<Response><Enqueue>queue</Enqueue></Response>`` (or ``<Dial>number</Dial>``), basic
auth AccountSid:AuthToken. The CallSid comes from the stream's ``start``.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import logging
from base64 import b64encode
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import quote, urlsplit, urlunsplit
from xml.sax.saxutils import escape

import httpx
from fastapi import APIRouter, WebSocket
from pydantic import BaseModel, ConfigDict, Field

from callsense.connectors.endpoint import RouteContext
from callsense.connectors.live.connection import (
    Audio,
    EndCall,
    OpenCall,
    Refusal,
    StreamEvent,
    StreamParser,
    json_object,
    serve,
    validated,
)
from callsense.connectors.live.session import CLOSE_UNSUPPORTED, ProtocolError, admitted
from callsense.connectors.routing import Capabilities, RoutingAdapter, TargetBase, env
from callsense.core.errors import InputError
from callsense.pipeline.live import StreamFormat
from callsense.rules.model import Decision

__all__ = [
    "SIGNATURE_HEADER",
    "TRACK_CHANNEL",
    "MediaStreams",
    "TwilioAdapter",
    "TwilioTarget",
    "check_twilio_upgrade",
    "compute_signature",
    "router",
    "stream_url",
    "url_variants",
    "verify_signature",
]

log = logging.getLogger(__name__)

router = APIRouter(tags=["live"])

TRACK_CHANNEL = {"inbound": 0, "outbound": 1}
SAMPLE_RATE = 8000  # mu-law, one byte a sample
TRACK_LAG_S = 1.0  # a track this far behind the stream is one Twilio stopped streaming
_SILENT_SAMPLE = b"\xff"  # mu-law's zero
SIGNATURE_HEADER = "x-twilio-signature"
_SETTINGS_HEADER = "x-twilio-webhooks-signature-settings"  # Webhook Rules' shared keys
_DEFAULT_PORTS = {"https": 443, "wss": 443, "http": 80, "ws": 80}


class _MediaFormat(BaseModel):
    model_config = ConfigDict(extra="allow")

    encoding: Literal["audio/x-mulaw"]
    sampleRate: Literal[8000]
    channels: Literal[1] = 1


class _Start(BaseModel):
    model_config = ConfigDict(extra="allow")

    streamSid: str = Field(min_length=1, max_length=128)
    callSid: str = Field(min_length=1, max_length=128)
    tracks: list[Literal["inbound", "outbound"]] = Field(default_factory=lambda: ["inbound"])
    mediaFormat: _MediaFormat


class _Media(BaseModel):
    model_config = ConfigDict(extra="allow")

    track: Literal["inbound", "outbound"] = "inbound"
    timestamp: int | str | None = None
    payload: str


def _message(text: str | None) -> dict[str, Any]:
    if text is None:
        raise ProtocolError("Twilio sends JSON text messages only", CLOSE_UNSUPPORTED)
    data = json_object(text, "message")
    if not isinstance(data.get("event"), str):
        raise ProtocolError("a message has no 'event'")
    return data


@router.websocket("/v1/twilio")
@admitted
async def twilio(websocket: WebSocket) -> None:
    """Twilio Media Streams; see the module doc."""
    await serve(websocket, MediaStreams(), check=check_twilio_upgrade)


# --- the signed upgrade ----------------------------------------------------------------


def compute_signature(token: str, url: str, params: Mapping[str, str] | None = None) -> str:
    """``X-Twilio-Signature`` of a request to ``url``: base64 HMAC-SHA1, keyed by the auth
    token, of the URL followed by each POST parameter's name and value, sorted by name."""
    data = url + "".join(name + params[name] for name in sorted(params or {}))
    mac = hmac.new(token.encode("utf-8"), data.encode("utf-8"), hashlib.sha1)
    return base64.b64encode(mac.digest()).decode("ascii")


def url_variants(url: str) -> list[str]:
    """``url`` as given, without its port, and with its scheme's default port: the forms
    twilio-python's validator tries, since Twilio's signer is not consistent about ports."""
    variants = [url]
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:  # not a URL with a usable port: only the URL as sent
        return variants
    netloc = parts.netloc
    if port is not None:
        variants.append(urlunsplit(parts._replace(netloc=netloc[: netloc.rfind(":")])))
    elif parts.scheme in _DEFAULT_PORTS and netloc:
        default = f"{netloc}:{_DEFAULT_PORTS[parts.scheme]}"
        variants.append(urlunsplit(parts._replace(netloc=default)))
    return variants


def verify_signature(
    token: str, url: str, signature: str, params: Mapping[str, str] | None = None
) -> bool:
    """Does ``signature`` sign ``url`` (in any of its ``url_variants``) with ``token``?
    Constant-time per comparison; every variant is compared."""
    given = signature.strip().encode("utf-8")
    matched = False
    for candidate in url_variants(url):
        expected = compute_signature(token, candidate, params).encode("ascii")
        matched |= hmac.compare_digest(expected, given)
    return matched


def stream_url(websocket: WebSocket) -> str | None:
    """The URL Twilio called, as it signed it: ``wss://`` (its only scheme for Media
    Streams, whatever TLS a proxy terminated), the ``Host`` header, and the path and query
    as sent (not percent-decoded); None without a ``Host``."""
    host = websocket.headers.get("host", "").strip()
    if not host:
        return None
    scope = websocket.scope
    raw = scope.get("raw_path")
    path = raw.decode("latin-1") if raw else scope.get("path", "/")
    path = path.partition("?")[0]  # some servers keep the query in raw_path
    query = scope.get("query_string", b"").decode("latin-1")
    return f"wss://{host}{path}?{query}" if query else f"wss://{host}{path}"


async def check_twilio_upgrade(websocket: WebSocket, key_name: str | None) -> Refusal | str | None:
    """``serve``'s platform check for Twilio: 401 unless ``X-Twilio-Signature`` signs the
    URL Twilio called with an auth token stored as a key's secret. The key is the one the
    upgrade names (``?api_key=``, where a proxy or test client sends one) or else the one
    whose token verifies the signature: Twilio drops a ``<Stream>`` URL's query, so the
    signature is how a real Twilio stream is told apart. No check when the service has no
    key store (like the API key check) or ``platform_signatures`` is off. The reason never
    carries the URL (it may hold a key)."""
    runtime = getattr(websocket.app.state, "runtime", None)
    keys = getattr(runtime, "keys", None)
    if keys is None or runtime.settings.platform_signatures == "off":
        return None
    outcome = await _signed_by(websocket, keys, key_name)
    if isinstance(outcome, str):
        return outcome
    log.info("twilio: signature refused: %s", outcome.reason)
    return Refusal(401, f"Twilio signature: {outcome.reason}")


@dataclass(frozen=True, slots=True)
class _Unsigned:
    reason: str  # why the signature is not accepted (safe to tell the client)


async def _signed_by(websocket: WebSocket, keys: Any, key_name: str | None) -> str | _Unsigned:
    """The name of the key whose auth token signed this upgrade, or why none did."""
    signature = websocket.headers.get(SIGNATURE_HEADER, "").strip()
    if not signature:
        return _Unsigned("the request is not signed (no X-Twilio-Signature header)")
    if websocket.headers.get(_SETTINGS_HEADER):
        return _Unsigned(
            "shared-key signatures of Webhook Rules are not supported; sign with the auth token"
        )
    url = stream_url(websocket)
    if url is None:
        return _Unsigned("the request has no Host header")
    tokens = await asyncio.to_thread(keys.secrets)
    if key_name is not None:
        tokens = [(name, token) for name, token in tokens if name == key_name]
        if not tokens:
            return _Unsigned(
                "the API key has no auth token (callsense keys secret NAME --value-from-env VAR)"
            )
    # every candidate is compared (no early exit): the time taken does not tell which matched
    signers = [name for name, token in tokens if verify_signature(token, url, signature)]
    if signers:
        return signers[0]
    return _Unsigned(
        "the signature does not match (another auth token, or the URL changed on the way: a "
        "proxy must keep Host, path and query)"
    )


class MediaStreams(StreamParser):
    """Twilio Media Streams as data: ``start`` opens the call, ``media`` feeds a track."""

    name = "twilio stream"
    protocol = "twilio"
    ended_early = "stream ended without stop"

    def __init__(self) -> None:
        self.channels: dict[str, int] = {}
        self.started = False
        self.end: float | None = None  # where the last chunk on any track ended (seconds)
        self.heard: dict[str, float] = {}  # per track: where its audio (or silence) ends

    def parse(self, text: str | None, data: bytes | None) -> list[StreamEvent]:
        message = _message(text)
        event = message["event"]
        if event == "start":
            if self.started:
                raise ProtocolError("a second 'start' in one stream")
            start = validated(_Start, message.get("start"), "start")
            tracks = list(dict.fromkeys(start.tracks))
            self.channels = {t: i for i, t in enumerate(sorted(tracks, key=TRACK_CHANNEL.get))}
            roles = {i: ("customer" if t == "inbound" else "agent")
                     for t, i in self.channels.items()}  # fmt: skip
            fmt = StreamFormat(8000, len(self.channels), "mulaw", roles)
            self.started = True
            return [OpenCall(_call_id(start.callSid), fmt, RouteContext(call_sid=start.callSid))]
        if event == "media":
            if not self.started:
                raise ProtocolError("'media' before 'start'")
            media = validated(_Media, message.get("media"), "media")
            if media.track not in self.channels:
                raise ProtocolError(f"media on track {media.track!r}, not in 'tracks'")
            try:
                audio = base64.b64decode(media.payload, validate=True)
            except (binascii.Error, ValueError):
                raise ProtocolError("media.payload is not base64") from None
            at = _seconds(media.timestamp)
            if at is None:
                return [Audio(audio, self.channels[media.track])]
            events = self._silent_tracks(media.track, at)
            self.heard[media.track] = max(self.heard.get(media.track, 0.0),
                                          at + len(audio) / SAMPLE_RATE)  # fmt: skip
            self.end = max(self.end or 0.0, self.heard[media.track])
            return [*events, Audio(audio, self.channels[media.track], at)]
        if event == "stop":
            return [EndCall(at=self.end)]
        # marks acknowledge audio sent into the stream: none is (see the module doc)
        if event not in ("connected", "mark", "dtmf"):
            raise ProtocolError(f"unknown event {event!r}")
        return []

    def _silent_tracks(self, track: str, at: float) -> list[StreamEvent]:
        """Silence on the other tracks that Twilio stopped streaming (it sends no silent
        outbound packets), kept ``TRACK_LAG_S`` behind ``at``: their time is placed as the
        stream goes, so the call's utterances in time order never wait for a track that
        may not come back (a late packet of such a track is appended after it)."""
        events: list[StreamEvent] = []
        until = at - TRACK_LAG_S
        for other, channel in self.channels.items():
            if other != track and self.heard.get(other, 0.0) < until:
                # one silent sample ending at ``until``: the call fills the silence before
                # it a second at a time (no allocation of a long silence here)
                events.append(Audio(_SILENT_SAMPLE, channel, until - 1 / SAMPLE_RATE))
                self.heard[other] = until
        return events


def _call_id(call_sid: str) -> str:
    """Twilio's CallSid (CA + 32 hex) is already a valid call id; anything else is cleaned."""
    cleaned = "".join(c if c.isalnum() or c in "_.:-" else "-" for c in call_sid)[:128]
    return cleaned if cleaned[:1].isalnum() else f"t{cleaned}"[:128]


def _seconds(timestamp: int | str | None) -> float | None:
    try:
        return int(timestamp) / 1000.0 if timestamp is not None else None
    except ValueError:
        raise ProtocolError("media.timestamp is not an integer") from None


# --- routing -------------------------------------------------------------------------


class TwilioTarget(TargetBase):
    kind: Literal["twilio"]
    base_url: str = "https://api.twilio.com"
    account_sid_env: str = "TWILIO_ACCOUNT_SID"
    auth_token_env: str = "TWILIO_AUTH_TOKEN"


class TwilioAdapter(RoutingAdapter):
    capabilities = Capabilities(transfer=True, attributes=False)
    target: TwilioTarget

    def build_request(self, decision: Decision, context: RouteContext) -> httpx.Request:
        params = decision.params
        if params.get("queue"):
            twiml = f"<Response><Enqueue>{escape(str(params['queue']))}</Enqueue></Response>"
        elif params.get("number"):
            twiml = f"<Response><Dial>{escape(str(params['number']))}</Dial></Response>"
        else:
            raise InputError("a Twilio route needs params.queue or params.number")
        sid = env(self.target.account_sid_env)
        token = env(self.target.auth_token_env)
        call_sid = str(params.get("call_sid") or context.call_sid or decision.call_id)
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
