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

import contextlib
import json
import logging
from typing import Annotated, Any, Literal

from fastapi import APIRouter, WebSocket
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from callsense.connectors.live.connection import Protocol, serve
from callsense.connectors.live.session import (
    CLOSE_NOT_READY,
    CLOSE_POLICY,
    CLOSE_UNSUPPORTED,
    LiveSession,
    ProtocolError,
    admitted,
    event_message,
)
from callsense.pipeline.events import CallEvent
from callsense.pipeline.live import StreamFormat
from callsense.pipeline.model import Speaker
from callsense.pipeline.records import format_validation_error

__all__ = ["StartMessage", "router"]

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


def _json(text: str, what: str) -> dict[str, Any]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ProtocolError(f"{what}: not JSON (line {exc.lineno}, column {exc.colno})") from None
    if not isinstance(data, dict):
        raise ProtocolError(f"{what}: expected a JSON object")
    return data


def _start(message: dict[str, Any]) -> StartMessage:
    if message.get("text") is None:
        raise ProtocolError("the first message must be the JSON start message", CLOSE_UNSUPPORTED)
    data = _json(message["text"], "start message")
    try:
        return StartMessage.model_validate(data)
    except ValidationError as exc:
        raise ProtocolError(format_validation_error(exc, file="start message")) from None


@router.websocket("/v1/stream")
@admitted
async def stream(websocket: WebSocket) -> None:
    """Raw PCM call audio in, JSON events out (see the module doc)."""
    await serve(websocket, _Stream(websocket))


class _Stream(Protocol):
    name = "live stream"
    ended_early = "client disconnected before stop"

    async def receive(self, message: dict[str, Any]) -> bool:
        if self.live is None:
            start = _start(message)

            async def send(event: CallEvent) -> None:
                await self.ws.send_json(event_message(event))

            self.live = await LiveSession.open(
                self.ws.app,
                start.call_id,
                start.stream_format(),
                protocol="stream",
                send=send,
                policy=start.policy,
            )
            return True
        if message.get("bytes") is not None:
            await self.live.call.feed(message["bytes"])
            return True
        data = _json(message.get("text") or "", "control message")
        if data.get("type") == "stop":
            return False
        raise ProtocolError(f"unexpected message type {data.get('type')!r}; send 'stop'")

    def reading(self) -> bool:
        # A client that went away has still sent what is buffered: read it to the disconnect
        # (its audio is analyzed and its decisions kept). Only a client too slow to read our
        # messages ends the reading here.
        return self.live is None or self.live.gone_reason != "client too slow"

    def outcome(self, error: str | None, code: int) -> tuple[str | None, int]:
        if self.live is not None and self.live.client_gone.is_set() and error is None:
            error = self.live.gone_reason
            code = CLOSE_POLICY if error == "client too slow" else 1000
        return error, code

    async def refused(self, exc: ProtocolError) -> None:
        kind = "protocol" if exc.code != CLOSE_NOT_READY else "not_ready"
        await _send_error(self.ws, kind, str(exc))

    async def failed(self, exc: Exception) -> None:
        await _send_error(self.ws, "internal", type(exc).__name__)


async def _send_error(websocket: WebSocket, kind: str, message: str) -> None:
    with contextlib.suppress(Exception):  # the client may be gone already
        await websocket.send_json({"type": "error", "error": kind, "message": message})
