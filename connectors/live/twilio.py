"""``WS /v1/twilio``: Twilio Media Streams in (``<Start><Stream track="both_tracks">``).

Twilio sends JSON text messages: ``connected``, then ``start`` (``streamSid``, ``callSid``,
``tracks``, ``mediaFormat`` audio/x-mulaw 8000 Hz mono), then ``media`` (``track``
inbound/outbound, ``chunk``, ``timestamp`` in ms from the stream's start, ``payload``
base64 mu-law), ``dtmf``, ``mark``, and finally ``stop``. The inbound track is the caller
(customer), the outbound track what the caller hears (agent); each becomes a channel of
the call, placed in time by ``timestamp`` (Twilio skips silent outbound packets).

Nothing is sent back: decisions go to the call store, the webhook outbox and the logs.
The key comes as ``?api_key=`` in the stream URL (Twilio cannot set headers).
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
from typing import Any, Literal

from fastapi import APIRouter, WebSocket
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from callsense.connectors.live.connection import Protocol, serve
from callsense.connectors.live.session import (
    CLOSE_UNSUPPORTED,
    LiveSession,
    ProtocolError,
    admitted,
)
from callsense.pipeline.live import StreamFormat
from callsense.pipeline.records import format_validation_error

__all__ = ["TRACK_CHANNEL", "router"]

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
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        raise ProtocolError("a message is not JSON") from None
    if not isinstance(data, dict) or not isinstance(data.get("event"), str):
        raise ProtocolError("a message has no 'event'")
    return data


def _model(model: type[BaseModel], data: Any, what: str) -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ProtocolError(format_validation_error(exc, file=what)) from None


@router.websocket("/v1/twilio")
@admitted
async def twilio(websocket: WebSocket) -> None:
    """Twilio Media Streams; see the module doc."""
    await serve(websocket, _Twilio(websocket))


class _Twilio(Protocol):
    name = "twilio stream"
    ended_early = "stream ended without stop"

    def __init__(self, websocket: WebSocket) -> None:
        super().__init__(websocket)
        self.channels: dict[str, int] = {}

    async def receive(self, message: dict[str, Any]) -> bool:
        data = _message(message.get("text"))
        event = data["event"]
        if event == "start":
            if self.live is not None:
                raise ProtocolError("a second 'start' in one stream")
            start: _Start = _model(_Start, data.get("start"), "start")
            tracks = list(dict.fromkeys(start.tracks))
            self.channels = {t: i for i, t in enumerate(sorted(tracks, key=TRACK_CHANNEL.get))}
            roles = {i: ("customer" if t == "inbound" else "agent")
                     for t, i in self.channels.items()}  # fmt: skip
            fmt = StreamFormat(8000, len(self.channels), "mulaw", roles)
            self.live = await LiveSession.open(
                self.ws.app,
                _call_id(start.callSid),
                fmt,
                protocol="twilio",
                platform={"call_sid": start.callSid},
            )
        elif event == "media":
            if self.live is None:
                raise ProtocolError("'media' before 'start'")
            media: _Media = _model(_Media, data.get("media"), "media")
            if media.track not in self.channels:
                raise ProtocolError(f"media on track {media.track!r}, not in 'tracks'")
            try:
                audio = base64.b64decode(media.payload, validate=True)
            except (binascii.Error, ValueError):
                raise ProtocolError("media.payload is not base64") from None
            at = _seconds(media.timestamp)
            await self.live.call.feed_channel(self.channels[media.track], audio, at=at)
        elif event == "stop":
            return False
        elif event not in ("connected", "mark", "dtmf"):
            raise ProtocolError(f"unknown event {event!r}")
        return True


def _call_id(call_sid: str) -> str:
    """Twilio's CallSid (CA + 32 hex) is already a valid call id; anything else is cleaned."""
    cleaned = "".join(c if c.isalnum() or c in "_.:-" else "-" for c in call_sid)[:128]
    return cleaned if cleaned[:1].isalnum() else f"t{cleaned}"[:128]


def _seconds(timestamp: int | str | None) -> float | None:
    try:
        return int(timestamp) / 1000.0 if timestamp is not None else None
    except ValueError:
        raise ProtocolError("media.timestamp is not an integer") from None
