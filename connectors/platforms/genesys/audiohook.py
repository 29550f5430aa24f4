"""Genesys AudioHook in: ``WS /v1/audiohook``, protocol version 2, as a monitor.

AudioHook: text frames are JSON messages with ``version``, ``type``, ``id`` (the session),
``seq`` (each side counts its own messages from 1) and the last seq seen from the other
side (``serverseq`` in the client's, ``clientseq`` in ours); the client's also carry its
``position`` in the audio stream. The upgrade is signed (``signature``). The client opens
with ``open``, offering media; we answer ``opened`` choosing PCMU 8 kHz, preferring the
stereo offer (channels ``external`` = customer, ``internal`` = agent, interleaved in binary
frames), or ``media: []`` when nothing fits (the client then closes). ``ping`` gets
``pong``; ``close`` gets ``closed`` at once, before the last seconds are analysed.

The platform's timeline is kept: audio not streamed (``paused`` .. ``resumed``, a
``discarded`` span, the time between a ``close`` with reason ``reconnect`` and the open
that names this session in ``continuedSessions``) becomes a gap in the call, so later
utterances keep their platform time; each policy decides whether a streak runs across a
gap (``on_pause``, default: it does not). A reconnect continues the same call. A
connection probe (all-zero conversation id) is answered and never stored. A protocol
violation gets a ``disconnect`` (reason ``error``), then the client's ``close`` is awaited
and answered with ``closed`` before the socket closes; the call keeps what it received.
"""

from __future__ import annotations

import logging
import re
from typing import Any, Literal

from fastapi import APIRouter, WebSocket
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from callsense.connectors.endpoint import RouteContext
from callsense.connectors.live.connection import (
    Audio,
    EndCall,
    OpenCall,
    Pause,
    Reply,
    StreamEvent,
    StreamParser,
    json_object,
    serve,
    validated,
)
from callsense.connectors.live.session import CLOSE_UNSUPPORTED, ProtocolError, admitted
from callsense.connectors.platforms.genesys.signature import check_audiohook_upgrade
from callsense.pipeline.live import StreamFormat
from callsense.pipeline.model import Gap, GapKind

__all__ = ["LANGUAGE_TAGS", "ROLES", "AudioHook", "router"]

log = logging.getLogger(__name__)

router = APIRouter(tags=["live"])

ROLES = {"external": "customer", "internal": "agent"}
PROBE_ID = "00000000-0000-0000-0000-000000000000"
# what ``supportedLanguages`` answers, and how an ``open``'s language maps to SenseVoice's
LANGUAGE_TAGS = ("en-US", "zh-CN", "zh-HK", "ja-JP", "ko-KR")
_LANGUAGE_OF = {"en": "en", "zh-hk": "yue", "yue": "yue", "zh": "zh", "ja": "ja", "ko": "ko"}
_NOTED = {"update", "dtmf"}
_DURATION = re.compile(r"PT(?:(\d+(?:\.\d+)?)H)?(?:(\d+(?:\.\d+)?)M)?(?:(\d+(?:\.\d+)?)S)?")


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
    serverseq: int | None = Field(None, ge=0)
    position: str | None = None
    parameters: dict[str, Any] = Field(default_factory=dict)


class AudioHook(StreamParser):
    """The protocol state of one AudioHook connection, as data."""

    name = "audiohook"
    protocol = "audiohook"
    ended_early = "connection ended without close"
    awaits_close = True

    def __init__(self, session_id: str | None = None) -> None:
        self.header_id = session_id  # the upgrade's Audiohook-Session-Id, for early errors
        self.id: str | None = None
        self.clientseq = 0
        self.seq = 0
        self.media: _Media | None = None
        self.streaming = False  # audio goes to a call (not a probe, media was agreed)
        self.paused_at: float | None = None
        self.disconnecting = False

    @property
    def session_key(self) -> str | None:
        return self.id

    def parse(self, text: str | None, data: bytes | None) -> list[StreamEvent]:
        if data is not None and self.id is not None:
            return [Audio(data)] if self.streaming and not self.disconnecting else []
        if self.disconnecting:
            return self._closing(text)
        msg = self.check(text)
        at = _seconds(msg.position) if msg.position else None
        if msg.type == "open":
            return self.open(msg, at or 0.0)
        if self.id is None:
            raise ProtocolError(f"{msg.type!r} before 'open'")
        if msg.type == "ping":
            return [Reply(self.message("pong"))]
        if msg.type == "close":
            events: list[StreamEvent] = []
            if self.paused_at is not None and at is not None:  # closed while paused
                events += self.gap(self.paused_at, at - self.paused_at, "paused")
            reason = msg.parameters.get("reason")
            park = reason == "reconnect" and self.streaming
            return [*events, EndCall(first=(self.message("closed"),), at=at, park=park)]
        if msg.type == "paused":
            self.paused_at = at
            return []
        if msg.type in ("resumed", "discarded"):
            self.paused_at = None
            start = _seconds(str(msg.parameters.get("start", "")))
            skipped = _seconds(str(msg.parameters.get("discarded", "")))
            kind: GapKind = "paused" if msg.type == "resumed" else "discarded"
            return self.gap(start, skipped, kind)
        if msg.type == "error":
            code, text_ = msg.parameters.get("code"), str(msg.parameters.get("message", ""))
            log.warning("audiohook %s: client error %s: %s", self.id, code, text_[:200])
            return []
        if msg.type in _NOTED:
            log.info("audiohook %s: client sent %s", self.id, msg.type)
            return []
        raise ProtocolError(f"unknown message type {msg.type!r}")

    def open(self, msg: _Message, at: float) -> list[StreamEvent]:
        if self.id is not None:
            raise ProtocolError("a second 'open' in one session")
        self.id = msg.id
        self.opened = True
        params = msg.parameters
        self.media = self.choose(list(params.get("media") or []))
        opened: dict[str, Any] = {
            "startPaused": False,
            "media": [self.media.model_dump()] if self.media else [],
        }
        if params.get("supportedLanguages") is True:
            opened["supportedLanguages"] = list(LANGUAGE_TAGS)
        reply = Reply(self.message("opened", opened))
        ids = _genesys_ids(params)
        if self.media is None or ids.conversation_id == PROBE_ID:
            log.info("audiohook %s: %s", msg.id, "probe" if self.media else "no acceptable media")
            return [reply]  # nothing to analyse: no call is opened or stored
        self.streaming = True
        roles = {i: ROLES[c] for i, c in enumerate(self.media.channels)}
        language = _language(params.get("language"))
        fmt = StreamFormat(8000, len(self.media.channels), "mulaw", roles, language)  # type: ignore[arg-type]
        continues = tuple(
            str(s["id"])
            for s in params.get("continuedSessions") or []
            if isinstance(s, dict) and isinstance(s.get("id"), str)
        )
        call = OpenCall(_call_id(msg.id), fmt, ids, speak=False, continues=continues, at=at)
        return [call, reply]

    def gap(self, start: float, duration: float, kind: GapKind) -> list[StreamEvent]:
        if duration <= 0 or not self.streaming:
            return []
        return [Pause(Gap(start, duration, kind))]

    def refusal(self, exc: ProtocolError) -> list[dict[str, Any]]:
        self.disconnecting = True
        return [self.message("disconnect", {"reason": "error", "info": str(exc)[:200]})]

    def failure(self, exc: Exception) -> list[dict[str, Any]]:
        self.disconnecting = True
        return [self.message("disconnect", {"reason": "error", "info": "internal server error"})]

    def _closing(self, text: str | None) -> list[StreamEvent]:
        """After our ``disconnect``: only the client's ``close`` matters now."""
        try:
            data = json_object(text or "", "message")
        except ProtocolError:
            return []
        if data.get("type") != "close":
            return []
        if isinstance(data.get("seq"), int):
            self.clientseq = data["seq"]
        return [EndCall(first=(self.message("closed"),))]

    def message(self, type_: str, parameters: dict[str, Any] | None = None) -> dict[str, Any]:
        """Our next message (``seq`` counts ours, ``clientseq`` acknowledges theirs)."""
        self.seq += 1
        return {
            "version": "2",
            "type": type_,
            "seq": self.seq,
            "clientseq": self.clientseq,
            "id": self.id or self.header_id or PROBE_ID,
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
        if msg.serverseq is not None and msg.serverseq > self.seq:
            raise ProtocolError(f"serverseq {msg.serverseq}: we sent {self.seq} messages")
        self.clientseq = msg.seq
        if msg.position is not None and _DURATION.fullmatch(msg.position) is None:
            raise ProtocolError(f"position {msg.position[:40]!r} is not an ISO 8601 duration")
        return msg

    def choose(self, offers: list[Any]) -> _Media | None:
        """The stereo PCMU 8 kHz offer (else a mono one); None if none fits."""
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
        return max(fits, key=lambda m: len(m.channels)) if fits else None


@router.websocket("/v1/audiohook")
@admitted
async def audiohook(websocket: WebSocket) -> None:
    """Genesys AudioHook monitor; see the module doc."""
    session_id = websocket.headers.get("audiohook-session-id")
    await serve(websocket, AudioHook(session_id), check=check_audiohook_upgrade)


def _seconds(duration: str) -> float:
    """An ISO 8601 duration as AudioHook writes positions (``PT12.5S``, ``PT1M2S``)."""
    m = _DURATION.fullmatch(duration)
    if m is None or duration == "PT":
        raise ProtocolError(f"{duration[:40]!r} is not an ISO 8601 duration")
    h, mi, s = (float(g) if g else 0.0 for g in m.groups())
    return h * 3600 + mi * 60 + s


def _language(tag: Any) -> str | None:
    """SenseVoice's language for an ``open``'s BCP 47 tag (None: detect it)."""
    if not isinstance(tag, str):
        return None
    tag = tag.lower()
    for prefix in sorted(_LANGUAGE_OF, key=len, reverse=True):
        if tag == prefix or tag.startswith(prefix + "-"):
            return _LANGUAGE_OF[prefix]
    return None


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
    """The session id (a UUID per AudioHook session; a reconnect continues the first's)."""
    cleaned = "".join(c if c.isalnum() or c in "_.:-" else "-" for c in session_id)[:120]
    return cleaned if cleaned[:1].isalnum() else f"g{cleaned}"[:128]
