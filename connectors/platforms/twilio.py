"""Twilio: Media Streams in (``WS /v1/twilio``), call moves out (the REST API's Calls).

Stream: ``<Start><Stream track="both_tracks">`` sends JSON text messages: ``connected``,
then ``start`` (``streamSid``, ``callSid``, ``tracks``, ``mediaFormat`` audio/x-mulaw 8000
Hz mono), then ``media`` (``track`` inbound/outbound, ``chunk``, ``timestamp`` in ms from
the stream's start, ``payload`` base64 mu-law), ``dtmf``, ``mark``, and finally ``stop``.
The inbound track is the caller (customer), the outbound track what the caller hears
(agent); each becomes a channel of the call, placed in time by ``timestamp`` (Twilio skips
silent outbound packets). Nothing is sent back; the key comes as ``?api_key=`` in the
stream URL (Twilio cannot set headers).

Routing: ``POST /2010-04-01/Accounts/{AccountSid}/Calls/{CallSid}.json`` form-encoded
``Twiml=<Response><Enqueue>queue</Enqueue></Response>`` (or ``<Dial>number</Dial>``), basic
auth AccountSid:AuthToken. The CallSid comes from the stream's ``start``.
"""

from __future__ import annotations

import base64
import binascii
import logging
from base64 import b64encode
from typing import Any, Literal
from urllib.parse import quote
from xml.sax.saxutils import escape

import httpx
from fastapi import APIRouter, WebSocket
from pydantic import BaseModel, ConfigDict, Field

from callsense.connectors.endpoint import RouteContext
from callsense.connectors.live.connection import (
    Audio,
    EndCall,
    OpenCall,
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

__all__ = ["TRACK_CHANNEL", "MediaStreams", "TwilioAdapter", "TwilioTarget", "router"]

log = logging.getLogger(__name__)

router = APIRouter(tags=["live"])

TRACK_CHANNEL = {"inbound": 0, "outbound": 1}


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
    await serve(websocket, MediaStreams())


class MediaStreams(StreamParser):
    """Twilio Media Streams as data: ``start`` opens the call, ``media`` feeds a track."""

    name = "twilio stream"
    protocol = "twilio"
    ended_early = "stream ended without stop"

    def __init__(self) -> None:
        self.channels: dict[str, int] = {}
        self.started = False

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
            return [Audio(audio, self.channels[media.track], _seconds(media.timestamp))]
        if event == "stop":
            return [EndCall()]
        if event not in ("connected", "mark", "dtmf"):
            raise ProtocolError(f"unknown event {event!r}")
        return []


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
