"""The one WebSocket loop every live route runs, and the typed events its parsers give it.

A platform's stream protocol is a ``StreamParser``: frames in (text or bytes), typed stream
events out, no I/O: ``OpenCall`` (the client started a call, or continues one after a
reconnect), ``Audio`` (frames for the call), ``Pause`` (call time the platform did not
stream), ``Reply`` (a message the protocol owes the client) and ``EndCall`` (the client
ended the call: ``first`` answers go out at once, ``then`` ones once the call is finished).
``serve`` does the rest the same way for every platform: checks at the upgrade (key,
signature, readiness), accept, open and feed the ``LiveSession``, forward the call's events
when the protocol wants them, end the call and close, and tell the client about an error
the platform's way (``refusal``/``failure``, then, for protocols with a close handshake,
wait for the client's close and answer it).

A client that says it will reconnect (``EndCall.park``) leaves its call parked for
``RECONNECT_WINDOW_S``: an ``OpenCall`` that ``continues`` it picks it up with its timeline
and rule state; otherwise the call is finished when the window ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

from fastapi import WebSocket, WebSocketDisconnect
from pydantic import BaseModel, ValidationError

from callsense.connectors.endpoint import RouteContext
from callsense.connectors.live.session import (
    CLOSE_NOT_READY,
    CLOSE_POLICY,
    LiveSession,
    ProtocolError,
    close_quietly,
    event_message,
    key_caller,
    refuse,
)
from callsense.core.errors import InputError
from callsense.pipeline.distributed.admission import Admission
from callsense.pipeline.events import CallEvent
from callsense.pipeline.live import LiveConfig, StreamFormat
from callsense.pipeline.model import Gap
from callsense.pipeline.records import format_validation_error

__all__ = [
    "Audio",
    "EndCall",
    "OpenCall",
    "Pause",
    "Refusal",
    "Reply",
    "StreamEvent",
    "StreamParser",
    "UpgradeCheck",
    "json_object",
    "serve",
    "validated",
]

log = logging.getLogger(__name__)

RECONNECT_WINDOW_S = 30.0  # a parked call waits this long for its client to come back
CLOSE_HANDSHAKE_S = 5.0  # after telling the client to go, wait this long for its close

Json = dict[str, Any]
M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True, slots=True)
class OpenCall:
    """The client started a call. ``forward_events``: send it the call's events as JSON."""

    call_id: str
    fmt: StreamFormat
    context: RouteContext = field(default_factory=RouteContext)
    policy: str | None = None
    forward_events: bool = False
    speak: bool = True  # False: a monitor never plays audio back (replies stay text)
    continues: tuple[str, ...] = ()  # earlier sessions of this call (a reconnect)
    at: float = 0.0  # the platform's position when it opened


@dataclass(frozen=True, slots=True)
class Audio:
    """Frames: interleaved in the call's format, or one ``channel``'s placed at ``at`` s."""

    data: bytes
    channel: int | None = None
    at: float | None = None


@dataclass(frozen=True, slots=True)
class Pause:
    """Call time the platform did not stream (see ``pipeline.model.Gap``)."""

    gap: Gap


@dataclass(frozen=True, slots=True)
class Reply:
    """A JSON message the protocol owes the client now (an ``opened``, a ``pong``)."""

    message: Json


@dataclass(frozen=True, slots=True)
class EndCall:
    """The client ended the call: ``first`` goes out at once (the analysis of the last
    seconds can take a while), ``then`` after the call is finished. ``at``: the platform's
    position; ``park``: the client will reconnect and continue the call."""

    first: tuple[Json, ...] = ()
    then: tuple[Json, ...] = ()
    at: float | None = None
    park: bool = False


StreamEvent = OpenCall | Audio | Pause | Reply | EndCall


@dataclass(frozen=True, slots=True)
class Refusal:
    """A connection turned away at the HTTP upgrade, before any protocol message: ``status``
    and ``detail`` are the HTTP answer (``close_code`` where the server cannot send one)."""

    status: int
    detail: str
    close_code: int = CLOSE_POLICY
    headers: Mapping[str, str] = field(default_factory=dict)


# a platform's own check of the upgrade request (a signature), given the name of the valid
# API key the upgrade carried (None: none): a refusal, the name of the key the platform's
# signature identifies (a platform that cannot send the key), or None (no objection)
UpgradeCheck = Callable[[WebSocket, str | None], Awaitable[Refusal | str | None]]


def json_object(text: str, what: str) -> Json:
    """``text`` as a JSON object; ``ProtocolError`` naming ``what`` and where it broke."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ProtocolError(f"{what}: not JSON (line {exc.lineno}, column {exc.colno})") from None
    if not isinstance(data, dict):
        raise ProtocolError(f"{what}: expected a JSON object")
    return data


def validated(model: type[M], data: Any, what: str) -> M:
    """``data`` as ``model``; a ``ProtocolError`` with file:field messages when it is not."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ProtocolError(format_validation_error(exc, file=what)) from None


class StreamParser(ABC):
    """One connection's platform protocol, as data (state: what it has seen so far)."""

    name: ClassVar[str]  # for logs
    protocol: ClassVar[str]  # stored with the call: "stream", "twilio", "audiohook"
    # what the call's record says when the client goes away without ending the call
    ended_early: ClassVar[str]
    # the protocol has a close handshake: after a refusal or failure, wait for the client's
    # close (``parse`` then gives its ``EndCall``) instead of dropping the socket
    awaits_close: ClassVar[bool] = False
    # the client has started its session (a probe opens one without a call)
    opened: bool = False

    @abstractmethod
    def parse(self, text: str | None, data: bytes | None) -> Sequence[StreamEvent]:
        """One frame's events; ``ProtocolError`` when the frame breaks the protocol."""

    @property
    def session_key(self) -> str | None:
        """The platform's id of this session, which a reconnect names (None: no reconnects)."""
        return None

    def refusal(self, exc: ProtocolError) -> list[Json]:
        """What tells the client it broke the protocol, before the close."""
        return []

    def failure(self, exc: Exception) -> list[Json]:
        """What tells the client the session failed on our side, before the close."""
        return []


async def serve(
    websocket: WebSocket, parser: StreamParser, check: UpgradeCheck | None = None
) -> None:
    """Run one live connection to its end; an error ends this session, never the service."""
    admitted = await upgrade_key(websocket, check)
    refusal = admitted if isinstance(admitted, Refusal) else None
    key = admitted if isinstance(admitted, str) else ""
    admission = getattr(websocket.app.state, "admission", None)
    reason = admission.enter(key) if refusal is None and admission is not None else None
    if reason == "key":
        refusal = Refusal(429, "too many live calls open with this API key", CLOSE_POLICY)
    elif reason is not None:  # filled up or began to drain while the key was checked
        refusal = Refusal(503, f"gateway {reason}: try another", CLOSE_NOT_READY)
    elif refusal is None and admission is not None and not admission.opening(key):
        admission.leave(key)
        refusal = Refusal(
            429, "too many connections with this API key have not started their call",
            CLOSE_POLICY,
        )  # fmt: skip
    if refusal is not None:
        log.info("%s: refused at the upgrade (%d)", parser.name, refusal.status)
        await refuse(websocket, refusal.status, refusal.detail, refusal.close_code,
                     refusal.headers)  # fmt: skip
        return
    unstarted = _Unstarted(admission, key)
    try:
        await _serve(websocket, parser, unstarted.release)
    finally:
        unstarted.release()
        if admission is not None:
            admission.leave(key)


@dataclass(slots=True)
class _Unstarted:
    """An admitted connection counted as not started until its call opens or it ends."""

    admission: Admission | None
    key: str
    counted: bool = True

    def release(self) -> None:
        if self.counted and self.admission is not None:
            self.admission.opened(self.key)
        self.counted = False


async def _serve(
    websocket: WebSocket, parser: StreamParser, started: Callable[[], None] | None = None
) -> None:
    await websocket.accept()
    runtime = getattr(websocket.app.state, "runtime", None)
    limits = getattr(runtime and runtime.cfg, "live", None)
    conn = _Connection(websocket, parser, limits, started=started)
    error: str | None = None
    code = 1000
    try:
        error, code = await conn.run()
    except WebSocketDisconnect:
        error = parser.ended_early
    except ProtocolError as exc:
        code, error = exc.code, str(exc)
        log.info("%s: protocol error, closing (%d)", parser.name, exc.code)
        if await conn.goodbye(parser.refusal(exc)):
            code = 1000
    except Exception as exc:  # this session ends, the service goes on
        code, error = 1011, type(exc).__name__
        log.warning("%s: session failed: %s", parser.name, type(exc).__name__)
        if await conn.goodbye(parser.failure(exc)):
            code = 1000
    finally:
        if conn.live is not None and not conn.parked:
            await conn.live.finish(error)
        await close_quietly(websocket, code, error or "")


async def upgrade_key(websocket: WebSocket, check: UpgradeCheck | None) -> str | Refusal:
    """The name of the API key this upgrade is admitted under, or why it is turned away: no
    valid API key (401) that the platform's check does not make up for, the platform's
    check, a viewer key (403: a call changes things), models still loading (503 with
    ``Retry-After``: a client is never accepted and then dropped because the service is not
    ready)."""
    caller = await key_caller(websocket)
    name = caller.name if caller is not None else None
    if check is not None:
        outcome = await check(websocket, name)
        if isinstance(outcome, Refusal):
            return outcome
        name = outcome or name
    if name is None:
        return Refusal(401, "a valid API key is required")
    runtime = getattr(websocket.app.state, "runtime", None)
    if caller is not None and caller.name == name:
        role: str | None = caller.role  # one lookup for the usual upgrade
    else:  # named by the platform's check (Twilio's signature)
        role = await asyncio.to_thread(runtime.keys.role, name) if runtime is not None else None
    if role == "viewer":
        return Refusal(403, f"the key {name!r} is a viewer key: it cannot stream calls")
    if runtime is not None and not runtime.ready:
        detail = "the models failed to load" if runtime.load_error else "models are loading"
        return Refusal(503, f"{detail}; retry shortly", CLOSE_NOT_READY, {"Retry-After": "5"})
    return name


@dataclass(slots=True)
class _Connection:
    ws: WebSocket
    parser: StreamParser
    limits: LiveConfig | None = None
    live: LiveSession | None = None
    parked: bool = False
    started: Callable[[], None] | None = None  # told once the call opens

    async def run(self) -> tuple[str | None, int]:
        """Read frames until the client ends the call or goes; the call's error and code."""
        while self.live is None or self.live.gone_reason != "client too slow":
            # a client that went away has still sent what is buffered: read it to the
            # disconnect (its audio is analyzed); only a client too slow to read ours stops
            message = await self.receive()
            if message["type"] == "websocket.disconnect":
                return (self.parser.ended_early if self.live is not None else None), 1000
            events = self.parser.parse(message.get("text"), message.get("bytes"))
            for event in events:
                if await self.act(event):
                    return self.outcome()
        return self.outcome()

    async def receive(self) -> Any:
        """The next frame; a client that does not open its call, or then goes quiet, within
        the limits is told so (a connection is a file descriptor and a slot)."""
        limits = self.limits or LiveConfig()
        started = self.live is not None or self.parser.opened
        wait = limits.idle_timeout_s if started else limits.open_timeout_s
        try:
            async with asyncio.timeout(wait):
                return await self.ws.receive()
        except TimeoutError:
            what = "sent nothing" if started else "did not start a call"
            raise ProtocolError(f"the client {what} for {wait:.0f} s", CLOSE_POLICY) from None

    def outcome(self) -> tuple[str | None, int]:
        if self.live is not None and self.live.client_gone.is_set():
            reason = self.live.gone_reason
            return reason, CLOSE_POLICY if reason == "client too slow" else 1000
        return None, 1000

    async def act(self, event: StreamEvent) -> bool:
        """Carry out one event; True when the call ended."""
        if isinstance(event, OpenCall):
            if self.started is not None:
                self.started()
            self.live = _unpark(self.ws.app, event.continues)
            if self.live is not None:
                await self.live.resume(self.forward if event.forward_events else None,
                                       event.context, at=event.at)  # fmt: skip
                return False
            self.live = await LiveSession.open(
                self.ws.app,
                event.call_id,
                event.fmt,
                protocol=self.parser.protocol,
                send=self.forward if event.forward_events else None,
                context=event.context,
                policy=event.policy,
                speak=event.speak,
            )
        elif isinstance(event, Pause | Audio):
            if self.live is None:
                if isinstance(event, Pause):
                    return False
                raise ProtocolError("audio before the call was opened")
            try:
                if isinstance(event, Pause):
                    await self.live.call.gap(event.gap)
                elif event.channel is None:
                    await self.live.call.feed(event.data)
                else:
                    await self.live.call.feed_channel(event.channel, event.data, at=event.at)
            except InputError as exc:  # a frame or a gap the call cannot take
                raise ProtocolError(str(exc), CLOSE_POLICY) from None
        elif isinstance(event, Reply):
            await self.ws.send_json(event.message)
        else:
            await self.send_all(list(event.first))
            if self.live is not None and event.park:
                _park(self.ws.app, self.parser, self.live, event.at)
                self.parked = True
            elif self.live is not None:
                await self.live.finish(at=event.at)
            await self.send_all(list(event.then))
            return True
        return False

    async def goodbye(self, messages: list[Json]) -> bool:
        """Tell the client the session ends; with a close handshake, wait (a while) for its
        close and answer it. True when the handshake completed."""
        await self.send_all(messages)
        if not (messages and self.parser.awaits_close):
            return False
        with contextlib.suppress(Exception):  # gone, too slow, or still broken: just close
            async with asyncio.timeout(CLOSE_HANDSHAKE_S):
                while True:
                    message = await self.ws.receive()
                    if message["type"] == "websocket.disconnect":
                        return False
                    for event in self.parser.parse(message.get("text"), message.get("bytes")):
                        if isinstance(event, EndCall):
                            await self.send_all([*event.first, *event.then])
                            return True
        return False

    async def forward(self, event: CallEvent) -> None:
        await self.ws.send_json(event_message(event))

    async def send_all(self, messages: list[Json]) -> None:
        for message in messages:
            with contextlib.suppress(Exception):  # the client may be gone already
                await self.ws.send_json(message)


def _parked(app: Any) -> dict[str, tuple[LiveSession, asyncio.Task[None]]]:
    parked = getattr(app.state, "parked_calls", None)
    if parked is None:
        parked = app.state.parked_calls = {}
    return parked


def _park(app: Any, parser: StreamParser, live: LiveSession, at: float | None) -> None:
    """Keep ``live`` open for its client's reconnect; finish it when the window ends."""
    key = parser.session_key
    if key is None:  # a protocol without session ids cannot be continued
        raise ProtocolError("this protocol cannot reconnect")
    parked = _parked(app)

    async def expire() -> None:
        await asyncio.sleep(RECONNECT_WINDOW_S)
        parked.pop(key, None)
        log.info("live call %s: no reconnect within %.0f s", live.call.call_id,
                 RECONNECT_WINDOW_S)  # fmt: skip
        await live.finish(at=at)

    live.detach(at)
    parked[key] = (live, asyncio.create_task(expire(), name=f"parked-{key}"))


def _unpark(app: Any, continues: Sequence[str]) -> LiveSession | None:
    """The parked call one of ``continues`` left, taken out of the parking."""
    parked = _parked(app)
    for key in continues:
        entry = parked.pop(key, None)
        if entry is not None:
            entry[1].cancel()
            return entry[0]
    return None
