"""What every live protocol shares: the engine, key checks, recording, sending events.

A ``LiveSession`` is one call over one WebSocket. Its pump reads the call's events and, for
each, first records it (utterances and decisions go to the call store as they fire,
decisions also to the webhook outbox), then hands it to the protocol's ``send`` if the
client is still there. So a client that is slow, gone or broken loses its messages, never
the call's decisions: the session ends, ``finish`` flushes the audio already received
through the pipeline and stores what came out.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import functools
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, WebSocket
from starlette.responses import JSONResponse
from starlette.websockets import WebSocketState

from callsense.connectors.endpoint import RouteContext
from callsense.connectors.wall.hub import Wall
from callsense.core.errors import CallsenseError
from callsense.pipeline.events import (
    CallEvent,
    DecisionEvent,
    ErrorEvent,
    ReplyEvent,
    UtteranceEvent,
)
from callsense.pipeline.live import LiveCall, LiveEngine, StreamFormat
from callsense.pipeline.model import Gap
from callsense.pipeline.records import record_from_utterance
from callsense.pipeline.summary import CallResult

if TYPE_CHECKING:
    from callsense.connectors.auth import Caller

__all__ = [
    "CLOSE_INVALID",
    "CLOSE_NOT_READY",
    "CLOSE_POLICY",
    "CLOSE_UNSUPPORTED",
    "LiveSession",
    "ProtocolError",
    "event_message",
    "key_caller",
    "live_engine",
    "refuse",
]

log = logging.getLogger(__name__)

CLOSE_UNSUPPORTED = 1003  # a frame of a kind the protocol does not allow here
CLOSE_INVALID = 1007  # a message that does not parse or validate
CLOSE_POLICY = 1008  # no key, or a client too slow to keep up
CLOSE_ERROR = 1011
CLOSE_NOT_READY = 1013  # models still loading: try again later

SEND_TIMEOUT_S = 10.0
MAX_UNSENT = 256  # events waiting for a client that does not read


class ProtocolError(CallsenseError):
    """The client broke the protocol; ``code`` is the WebSocket close code to use."""

    def __init__(self, message: str, code: int = CLOSE_INVALID) -> None:
        super().__init__(message)
        self.code = code


_engine_lock = asyncio.Lock()


async def live_engine(app: FastAPI) -> LiveEngine:
    """The app's live engine, built once from the runtime's loaded models."""
    engine: LiveEngine | None = getattr(app.state, "live_engine", None)
    if engine is not None:
        return engine
    async with _engine_lock:
        engine = getattr(app.state, "live_engine", None)
        if engine is not None:
            return engine
        runtime = app.state.runtime
        if not runtime.ready:
            raise ProtocolError("the models are still loading; retry shortly", CLOSE_NOT_READY)
        recognizer = runtime.transcriber.recognizer
        live = getattr(runtime.cfg, "live", None)  # the config's ``live:`` section
        engine = await asyncio.to_thread(
            LiveEngine, runtime.cfg, recognizer, runtime.flow, live=live
        )
        app.state.live_engine = engine
        return engine


async def key_caller(websocket: WebSocket) -> Caller | None:
    """The name and role of the valid API key the upgrade carries (headers, or
    ``?api_key=``), or None: no key, an unknown or revoked one."""
    from callsense.connectors.auth import key_from_connection

    key = key_from_connection(websocket, allow_query=True)
    if not key:
        return None
    state = websocket.app.state
    pending: dict[str, asyncio.Future[Caller | None]] | None = getattr(state, "key_lookups", None)
    if pending is None:
        pending = state.key_lookups = {}
    lookup = pending.get(key)
    if lookup is None:  # one database lookup serves every upgrade that carries this key now
        lookup = asyncio.ensure_future(asyncio.to_thread(state.runtime.keys.identify, key))
        pending[key] = lookup
        lookup.add_done_callback(lambda _: pending.pop(key, None))
    # shielded: an upgrade that goes away does not cancel the others' lookup
    caller: Caller | None = await asyncio.shield(lookup)
    return caller


def event_message(event: CallEvent) -> dict[str, Any]:
    """An event as the JSON object ``/v1/stream`` sends (transcript text goes to the client
    that sent the audio, never to logs)."""
    if isinstance(event, UtteranceEvent):
        return {"type": "utterance", **record_from_utterance(event.utterance),
                "closed_at": event.closed_at}  # fmt: skip
    if isinstance(event, DecisionEvent):
        return {"type": "decision", **event.decision.to_dict()}
    if isinstance(event, ReplyEvent):
        msg: dict[str, Any] = {"type": "reply", **event.reply.record()}
        if event.reply.audio is not None:
            msg["audio_b64"] = base64.b64encode(event.reply.audio).decode()
        return msg
    if isinstance(event, ErrorEvent):
        e = event.error
        return {"type": "error", "stage": e.stage, "error": e.kind, "message": e.message,
                "at": e.at}  # fmt: skip
    return {"type": "end", "call_id": event.result.transcript.call_id,
            "summary": event.result.summary}  # fmt: skip


Sender = Callable[[CallEvent], Awaitable[None]]


@dataclass(slots=True)
class _Record:
    """Where a call's output goes: the runtime's store and outbox, or (without a runtime)
    ``app.state.live_results``; a stored call's events also go to the supervisor wall."""

    app: FastAPI
    call_id: str
    protocol: str
    context: RouteContext = field(default_factory=RouteContext)  # the platform's call ids
    stored: bool = False

    @property
    def runtime(self) -> Any:
        return getattr(self.app.state, "runtime", None)

    @property
    def wall(self) -> Wall | None:
        return getattr(self.app.state, "wall", None)

    async def _blocking(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """A store or outbox write of this call, on the live engine's threads when there is
        one: a decision's webhook never waits behind other requests' blocking work."""
        engine: LiveEngine | None = getattr(self.app.state, "live_engine", None)
        if engine is None:
            return await asyncio.to_thread(fn, *args, **kwargs)
        return await engine.run(fn, *args, **kwargs)

    async def begin(self, language: str, policy: str | None = None) -> None:
        runtime = self.runtime
        if runtime is None:
            return
        from callsense.connectors.calls_store import CallExistsError

        try:
            await self._blocking(
                runtime.store.create, self.call_id, kind="live", language=language,
                requested_policy=policy, policy=policy,
                source=f"{self.protocol}@{runtime.settings.gateway_id}", status="running",
                context=self.context,
            )  # fmt: skip
        except CallExistsError as exc:
            raise ProtocolError(str(exc), CLOSE_POLICY) from None
        self.stored = True
        runtime.metrics.live_sessions.inc()
        if self.wall is not None:
            self.wall.hub.started(self.call_id, self.protocol, policy, language)

    async def event(self, event: CallEvent) -> None:
        runtime = self.runtime
        if isinstance(event, DecisionEvent):
            d = event.decision
            log.info("live call %s: decision %s (%s) at %.2f", self.call_id, d.rule, d.action, d.at)
        if runtime is None or not self.stored:
            return
        if isinstance(event, UtteranceEvent):
            await self._blocking(runtime.store.add_utterance, self.call_id, event.utterance)
            runtime.metrics.utterances_total.inc()
            if self.wall is not None:
                self.wall.hub.heard(self.call_id, event.utterance)
        elif isinstance(event, DecisionEvent):
            await self._blocking(runtime.store.add_decisions, self.call_id, [event.decision])
            await self._blocking(runtime.enqueue_decisions, [event.decision], self.context)
            runtime.metrics.decisions_total.labels(event.decision.rule).inc()
            if self.wall is not None:  # after the outbox: the wall never delays a webhook
                await self.wall.decided(self.call_id, event.decision)

    async def end(self, result: CallResult | None, error: str | None) -> None:
        if result is not None:
            results: dict[str, CallResult] | None = getattr(self.app.state, "live_results", None)
            if results is None:
                results = self.app.state.live_results = {}
            results[self.call_id] = result
        runtime = self.runtime
        if runtime is None or not self.stored:
            return
        if self.wall is not None:
            self.wall.hub.ended(self.call_id)
        runtime.metrics.live_sessions.dec()
        status = "done" if result is not None else "failed"
        runtime.metrics.calls_total.labels(status).inc()
        summary = result.summary if result is not None else None
        duration = result.transcript.duration if result is not None else None
        replies = [r.record() for r in result.replies] if result is not None else None
        await self._blocking(
            runtime.store.finish, self.call_id, summary, duration_s=duration,
            status=status, error=error, replies=replies,
        )  # fmt: skip

    async def update_context(self) -> None:
        """A reconnect brought platform ids the call did not have."""
        runtime = self.runtime
        if runtime is not None and self.stored:
            await self._blocking(runtime.store.update_context, self.call_id, self.context)


class LiveSession:
    """One call over one connection; see the module doc."""

    def __init__(
        self,
        app: FastAPI,
        call: LiveCall,
        *,
        protocol: str,
        send: Sender | None,
        context: RouteContext | None = None,
    ) -> None:
        self.call = call
        self.protocol = protocol
        self.record = _Record(app, call.call_id, protocol, context or RouteContext())
        self.client_gone = asyncio.Event()
        self.gone_reason = ""  # "client too slow" or "client disconnected"
        self.result: CallResult | None = None
        self._send = send
        self._outbox: asyncio.Queue[CallEvent | None] = asyncio.Queue(MAX_UNSENT)
        self._pump: asyncio.Task[None] | None = None
        self._sender: asyncio.Task[None] | None = None
        self._finished = False
        self._left_at: float | None = None

    @classmethod
    async def open(
        cls,
        app: FastAPI,
        call_id: str,
        fmt: StreamFormat,
        *,
        protocol: str,
        send: Sender | None = None,
        context: RouteContext | None = None,
        policy: str | None = None,
        speak: bool = True,
    ) -> LiveSession:
        """``context``: the contact center's ids of the call (a Genesys conversation and
        participant, a Twilio CallSid): where its ``route`` decisions act. ``policy``: a
        stored policy the call runs alone (None: the active set). ``speak=False``: replies
        are not synthesised (a monitor plays nothing back)."""
        engine = await live_engine(app)
        flow = None
        runtime = getattr(app.state, "runtime", None)
        if runtime is not None:
            try:
                flow = runtime.flow_for(policy)
            except KeyError:
                raise ProtocolError(f"no stored policy named {policy!r}") from None
        session = cls(app, engine.open(call_id, fmt, flow=flow, speak=speak),
                      protocol=protocol, send=send, context=context)  # fmt: skip
        await session.record.begin(session.call.language, policy)
        await session.call.start()
        session._pump = asyncio.create_task(session._run_pump(), name=f"live-{call_id}-pump")
        session._start_sender()
        log.info("live call %s: %s session open (%d ch, %d Hz, %s)", call_id, protocol,
                 fmt.channels, fmt.sample_rate, fmt.encoding)  # fmt: skip
        return session

    def _start_sender(self) -> None:
        if self._send is not None:
            self._outbox = asyncio.Queue(MAX_UNSENT)
            self._sender = asyncio.create_task(
                self._run_sender(), name=f"live-{self.call.call_id}-send"
            )

    def detach(self, at: float | None = None) -> None:
        """Its connection goes but the client will reconnect: stop sending, keep the call.
        ``at``: the platform's position when it left (where a reconnect's gap starts)."""
        self._left_at = at
        self._send = None
        if self._sender is not None:
            self._sender.cancel()
            self._sender = None

    async def resume(self, send: Sender | None, context: RouteContext, *, at: float) -> None:
        """A reconnect continues this call: a new connection (and maybe new platform ids);
        audio the platform did not stream between the two (``at`` is past the call's
        position) is a gap, so the timeline keeps the platform's time."""
        self.client_gone = asyncio.Event()
        self.gone_reason = ""
        self._send = send
        self._start_sender()
        merged = self.record.context.merged(context)
        if merged != self.record.context:
            self.record.context = merged
            await self.record.update_context()
        position = self.call.position if self._left_at is None else self._left_at
        if at > position + 0.05:
            await self.call.gap(Gap(position, at - position, "reconnect"))
        log.info("live call %s: continued by a reconnect", self.call.call_id)

    async def _run_pump(self) -> None:
        async for event in self.call.events():
            # the client first (latency), then the store (the sender runs concurrently)
            if self._send is not None and not self.client_gone.is_set():
                try:
                    self._outbox.put_nowait(event)
                except asyncio.QueueFull:
                    log.warning(
                        "live call %s: client does not read; ending its session",
                        self.call.call_id,
                    )
                    self._gone("client too slow")
            try:
                await self.record.event(event)
            except Exception as exc:  # storage trouble must not stop the call
                log.warning(
                    "live call %s: recording failed: %s", self.call.call_id, type(exc).__name__
                )
        if self._send is not None:
            with contextlib.suppress(asyncio.QueueFull):
                self._outbox.put_nowait(None)

    async def _run_sender(self) -> None:
        assert self._send is not None
        while True:
            event = await self._outbox.get()
            if event is None or self.client_gone.is_set():
                return
            try:
                await asyncio.wait_for(self._send(event), SEND_TIMEOUT_S)
            except Exception as exc:  # slow or gone: stop sending, keep the call
                log.info("live call %s: sending stopped (%s)", self.call.call_id,
                         type(exc).__name__)  # fmt: skip
                slow = isinstance(exc, asyncio.TimeoutError)
                self._gone("client too slow" if slow else "client disconnected")
                return

    def _gone(self, reason: str) -> None:
        if not self.client_gone.is_set():
            self.gone_reason = reason
            self.client_gone.set()

    async def finish(
        self, error: str | None = None, *, at: float | None = None
    ) -> CallResult | None:
        """Flush what was received, store the outcome, deliver the last events if possible.
        ``at``: the platform's position at the end (the call lasts that long).

        Idempotent: a protocol's close message and its connection's end may both call it."""
        if self._finished:
            return self.result
        self._finished = True
        try:
            self.result = await self.call.close(until=at)
        except Exception as exc:
            log.warning("live call %s: closing failed: %s", self.call.call_id, type(exc).__name__)
            error = error or f"{type(exc).__name__}: {exc}"
        if self._pump is not None:
            await self._pump
        if self._sender is not None:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._sender), SEND_TIMEOUT_S)
            self._sender.cancel()
        await self.record.end(self.result, error)
        return self.result


def is_open(websocket: WebSocket) -> bool:
    return (
        websocket.client_state == WebSocketState.CONNECTED
        and websocket.application_state == WebSocketState.CONNECTED
    )


async def close_quietly(websocket: WebSocket, code: int = 1000, reason: str = "") -> None:
    if is_open(websocket):
        with contextlib.suppress(Exception):
            await websocket.close(code, reason[:120])


async def refuse(
    websocket: WebSocket,
    status: int,
    detail: str,
    close_code: int,
    headers: Mapping[str, str] | None = None,
) -> None:
    """Turn a WebSocket away at the HTTP upgrade with ``status`` (problem-style JSON), or,
    where the server cannot send an HTTP answer, close it with ``close_code``."""
    if "websocket.http.response" in websocket.scope.get("extensions", {}):
        response = JSONResponse({"detail": detail}, status_code=status, headers=dict(headers or {}))
        await websocket.send_denial_response(response)
    else:
        await websocket.close(close_code, detail[:120])


def admitted(
    handler: Callable[[WebSocket], Awaitable[None]],
) -> Callable[[WebSocket], Awaitable[None]]:
    """Refuse a live route's upgrade while the gateway is full (``max_calls``) or draining,
    before its key is checked: the handshake is answered 503 (or, where the server cannot
    send an HTTP answer, closed with 1013 "try again later"), so the load balancer tries
    another gateway. The call is counted by ``connection.serve`` once its key passed."""

    @functools.wraps(handler)
    async def route(websocket: WebSocket) -> None:
        admission = getattr(websocket.app.state, "admission", None)
        reason = admission.check() if admission is not None else None
        if reason is not None:
            log.info("live call refused: gateway %s", reason)
            await refuse(websocket, 503, f"gateway {reason}: try another", CLOSE_NOT_READY)
            return
        await handler(websocket)

    return route
