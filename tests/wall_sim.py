"""Simulated live calls, driven through the real ``_Record`` of live sessions on the
service's own event loop: what a stream's pump does with each event (store it, publish it to
the supervisor wall), without the audio. For tests that need many calls at once (50 on the
wall) or exact control of what happens when; real streams are in tests/live and tests/web.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar

from fastapi import FastAPI
from starlette.types import Receive, Scope, Send

from callsense.connectors.live.session import _Record
from callsense.pipeline.events import DecisionEvent, UtteranceEvent
from callsense.pipeline.model import Utterance
from callsense.rules.model import Decision

__all__ = ["LoopCatcher", "SimCalls"]

T = TypeVar("T")
CHANNEL = {"customer": 0, "agent": 1}


class LoopCatcher:
    """An ASGI wrapper that remembers the server's event loop (from the lifespan start), so
    a test thread can run coroutines on it."""

    def __init__(self, app: FastAPI) -> None:
        self.app = app
        self.loop: asyncio.AbstractEventLoop | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.loop = asyncio.get_running_loop()
        await self.app(scope, receive, send)


@dataclass
class _Call:
    record: _Record
    position: float = 0.0
    utterances: int = 0


@dataclass
class SimCalls:
    """Live calls of ``app`` that the test moves forward event by event."""

    catcher: LoopCatcher
    calls: dict[str, _Call] = field(default_factory=dict)

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 30.0) -> T:
        assert self.catcher.loop is not None, "the server has not started"
        return asyncio.run_coroutine_threadsafe(coro, self.catcher.loop).result(timeout)

    def start(self, call_id: str, *, policy: str | None = None, language: str = "en") -> None:
        record = _Record(self.catcher.app, call_id, "stream")
        self.run(record.begin(language, policy))
        self.calls[call_id] = _Call(record)

    def say(
        self,
        call_id: str,
        speaker: str,
        text: str,
        *,
        emotion: str | None = "NEUTRAL",
        event: str = "Speech",
        seconds: float = 2.0,
    ) -> Utterance:
        """The next utterance of the call (after a 0.5 s pause), as VAD would close it."""
        call = self.calls[call_id]
        start = call.position + 0.5
        call.position = start + seconds
        call.utterances += 1
        utt = Utterance(call_id, CHANNEL[speaker], speaker, start, call.position, "speech",
                        "en", emotion, event, text, f"<|en|><|{emotion}|><|{event}|>{text}")  # type: ignore[arg-type]  # fmt: skip
        self.run(call.record.event(UtteranceEvent(utt, call.position + 0.3)))
        return utt

    def decide(
        self, call_id: str, rule: str, action: str, params: dict[str, Any], policy: str = "default"
    ) -> Decision:
        call = self.calls[call_id]
        decision = Decision(call_id, policy, rule, action, params, call.position, (), "sim")
        self.run(call.record.event(DecisionEvent(decision, call.position)))
        return decision

    def end(self, call_id: str) -> None:
        call = self.calls.pop(call_id)
        self.run(call.record.end(None, "simulated call ended"))

    def seq(self) -> int:
        """The wall hub's change counter (read on the loop, where it changes)."""

        async def read() -> int:
            seq: int = self.catcher.app.state.wall.hub.seq
            return seq

        return self.run(read())


def epoch_ms() -> float:
    """The clock a browser's ``performance.timeOrigin + performance.now()`` reads."""
    return time.time() * 1000.0
