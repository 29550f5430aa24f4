"""Genesys AudioHook in: ``WS /v1/audiohook``, protocol version 2, as a monitor.

AudioHook: text frames are JSON messages with ``version``, ``type``, ``id`` (the session),
``seq`` (each side counts its own messages from 1) and the last seq seen from the other
side (``serverseq`` in the client's, ``clientseq`` in ours). The client opens with
``open``, offering media; we answer ``opened`` choosing PCMU 8 kHz, preferring the stereo
offer (channels ``external`` = customer, ``internal`` = agent, interleaved in binary
frames). ``ping`` gets ``pong``; ``close`` gets ``closed``; ``paused``/``resumed``/
``update``/``discarded``/``error`` from the client are noted. A protocol violation gets a
``disconnect`` (reason ``error``) and the socket closes; the call keeps what it received.
"""

from __future__ import annotations

import logging
from typing import Any, Literal

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
from callsense.pipeline.live import StreamFormat

__all__ = ["ROLES", "AudioHook", "router"]

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
