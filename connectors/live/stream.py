"""``WS /v1/stream``: raw PCM in, utterances, decisions and replies out as the call goes on.

    client: {"type": "start", "call_id": "c1", "sample_rate": 8000|16000, "channels": 1|2,
             "encoding": "pcm16"|"mulaw", "roles": {"0": "customer", "1": "agent"},
             "language": "auto"}
    client: binary frames (interleaved little-endian samples), any size
    server: {"type": "utterance", ...record, "closed_at"} / {"type": "decision", ...}
            / {"type": "reply", ...} / {"type": "error", ...}
    client: {"type": "stop"}
    server: {"type": "end", "call_id", "summary"}, then closes (1000)

A protocol violation gets ``{"type": "error", "error": "protocol", ...}`` and a close code
(1003 a frame of the wrong kind, 1007 a bad message); the call keeps what it had received.
"""

from __future__ import annotations

import logging
from typing import Annotated, Any, Literal

from fastapi import APIRouter, WebSocket
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

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
from callsense.connectors.live.session import (
    CLOSE_NOT_READY,
    CLOSE_UNSUPPORTED,
    ProtocolError,
    admitted,
)
from callsense.pipeline.live import StreamFormat
from callsense.pipeline.model import Speaker

__all__ = ["StartMessage", "StreamProtocol", "router"]

log = logging.getLogger(__name__)

router = APIRouter(tags=["live"])

CallId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$")]


class StartMessage(BaseModel):
    """The first message of a ``/v1/stream`` session."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["start"]
    call_id: CallId
    sample_rate: Literal[8000, 16000] = 16000
    channels: Literal[1, 2] = 1
    encoding: Literal["pcm16", "mulaw"] = "pcm16"
    roles: dict[Literal["0", "1"], Speaker] | None = None
    language: Literal["auto", "zh", "en", "yue", "ja", "ko"] | None = Field(
        None, description="default: the config's recognizer.language"
    )
    policy: str | None = Field(
        None,
        description="a stored policy's name: this call runs it alone (default: the active set)",
    )

    def stream_format(self) -> StreamFormat:
        roles = {int(k): v for k, v in self.roles.items()} if self.roles else None
        return StreamFormat(self.sample_rate, self.channels, self.encoding, roles, self.language)


@router.websocket("/v1/stream")
@admitted
async def stream(websocket: WebSocket) -> None:
    """Raw PCM call audio in, JSON events out (see the module doc)."""
    await serve(websocket, StreamProtocol())


class StreamProtocol(StreamParser):
    """``/v1/stream`` as data: the start message, then audio frames until ``stop``."""

    name = "live stream"
    protocol = "stream"
    ended_early = "client disconnected before stop"

    def __init__(self) -> None:
        self.started = False

    def parse(self, text: str | None, data: bytes | None) -> list[StreamEvent]:
        if not self.started:
            if text is None:
                raise ProtocolError(
                    "the first message must be the JSON start message", CLOSE_UNSUPPORTED
                )
            what = "start message"
            start = validated(StartMessage, json_object(text, what), what)
            self.started = True
            return [
                OpenCall(
                    start.call_id, start.stream_format(), policy=start.policy, forward_events=True
                )
            ]
        if data is not None:
            return [Audio(data)]
        message = json_object(text or "", "control message")
        if message.get("type") == "stop":
            return [EndCall()]
        raise ProtocolError(f"unexpected message type {message.get('type')!r}; send 'stop'")

    def refusal(self, exc: ProtocolError) -> list[dict[str, Any]]:
        kind = "protocol" if exc.code != CLOSE_NOT_READY else "not_ready"
        return [{"type": "error", "error": kind, "message": str(exc)}]

    def failure(self, exc: Exception) -> list[dict[str, Any]]:
        return [{"type": "error", "error": "internal", "message": type(exc).__name__}]
