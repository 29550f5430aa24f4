"""What the framework adapters share, with no framework imported: the call's audio format,
one segment recognized the way a live call recognizes it, and where decisions go.

A framework owns the audio transport and the bot; callsense owns what is heard and decided.
Both adapters drive callsense's one live flow (``pipeline.live.LiveEngine``: the shared
recognizer worker, the call's ``CallSession`` with the privacy guard and the audit), so a
decision made inside a Pipecat pipeline or a LiveKit agent is the decision the service's
own live routes would make on the same audio.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from callsense.connectors.endpoint import Endpoint, RouteContext
from callsense.core.errors import InputError
from callsense.pipeline.audio import SAMPLE_RATE, resample
from callsense.pipeline.live import LiveEngine
from callsense.pipeline.model import Segment, Speaker, Utterance
from callsense.pipeline.resampler import StreamResampler
from callsense.pipeline.transcribe import utterance_from
from callsense.rules.model import Decision

__all__ = [
    "CallAudio",
    "DecisionOutlet",
    "OutboxOutlet",
    "ReactionConfig",
    "pcm16_mono",
    "recognize_clip",
    "wants",
]

log = logging.getLogger(__name__)

# the rates a live call takes as they are (8 kHz through its own Upsampler)
CALL_RATES = (8000, SAMPLE_RATE)

DecisionOutlet = Callable[[Decision], Awaitable[None]]
"""Where a call's decisions go besides the framework: the outbox, a queue, a test list."""


@dataclass(slots=True)
class CallAudio:
    """A framework's PCM16 frames in, the live call's PCM16 out.

    8 and 16 kHz go to the call as they are (its ``Upsampler`` is the one a recording and
    a telephony stream go through); any other rate is resampled to 16 kHz by a
    ``StreamResampler`` per channel, continuous across frames. Frames at another rate
    later in the call get a resampler of their own, to the call's rate."""

    call_rate: int
    channels: int
    _resamplers: dict[int, list[StreamResampler]] = field(default_factory=dict)

    @classmethod
    def for_frames(cls, sample_rate: int, channels: int) -> CallAudio:
        if channels not in (1, 2):
            raise InputError(f"callsense takes mono or stereo audio (got {channels} channels)")
        return cls(sample_rate if sample_rate in CALL_RATES else SAMPLE_RATE, channels)

    def __call__(self, audio: bytes, sample_rate: int, channels: int) -> bytes:
        if channels != self.channels:
            raise InputError(f"the call is {self.channels}-channel; a frame has {channels}")
        if sample_rate == self.call_rate:
            return audio
        steps = self._resamplers.get(sample_rate)
        if steps is None:
            steps = [StreamResampler(sample_rate, self.call_rate) for _ in range(channels)]
            self._resamplers[sample_rate] = steps
        pcm = np.frombuffer(audio[: len(audio) - len(audio) % (2 * channels)], dtype="<i2")
        block = pcm.reshape(-1, channels).astype(np.float32) / 32768.0
        return _interleave([step(block[:, i]) for i, step in enumerate(steps)])

    def flush(self) -> bytes:
        """What the resamplers still hold (the call's end)."""
        return b"".join(
            _interleave([step.flush() for step in steps]) for steps in self._resamplers.values()
        )


def _interleave(channels: Sequence[np.ndarray]) -> bytes:
    n = min(c.size for c in channels)
    block = np.stack([c[:n] for c in channels], axis=1)
    return np.clip(np.round(block * 32768.0), -32768, 32767).astype("<i2").tobytes()


def pcm16_mono(audio: bytes, sample_rate: int) -> np.ndarray:
    """A whole segment of mono PCM16 as the model's 16 kHz float32 (a complete clip: no
    frame edges, so the whole-array resampler of recordings is the right one)."""
    samples = np.frombuffer(audio[: len(audio) - len(audio) % 2], dtype="<i2")
    clip = samples.astype(np.float32) / 32768.0
    return resample(clip, sample_rate, SAMPLE_RATE) if sample_rate != SAMPLE_RATE else clip


async def recognize_clip(
    engine: LiveEngine,
    clip: np.ndarray,
    *,
    call_id: str,
    speaker: Speaker,
    start: float,
    language: str | None = None,
) -> Utterance:
    """One segment a framework's VAD cut, through the live calls' shared recognizer worker
    (micro-batched with every other call) and ``utterance_from``, then the flow's privacy
    guard (the compliance gate: no emotion on agents; PII redaction). The guard is the
    session's own and idempotent, so a session fed this utterance later changes nothing."""
    lang = language or engine.cfg.recognizer.language
    future = engine.worker.submit(np.ascontiguousarray(clip, dtype=np.float32), lang)
    recognition = await asyncio.wrap_future(future)
    segment = Segment(channel=0, start=start, end=start + clip.size / SAMPLE_RATE)
    utterance = utterance_from(
        segment, recognition, call_id=call_id, speaker=speaker, cfg=engine.cfg
    )
    return engine.flow.guard(utterance)


class ReactionConfig(BaseModel):
    """Which decisions a framework reacts to (``actions`` and/or ``rules``; both empty: all)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    actions: tuple[str, ...] = Field(("escalate",), description="decision actions that react")
    rules: tuple[str, ...] = Field((), description="rule ids that react (empty: any rule)")


def wants(reaction: ReactionConfig, decision: Decision) -> bool:
    if reaction.actions and decision.action not in reaction.actions:
        return False
    return not reaction.rules or decision.rule in reaction.rules


class OutboxOutlet:
    """Decisions into callsense's durable outbox, as the live routes commit theirs: stored
    with one message per interested webhook or routing target (``context``: the platform's
    call ids, where a ``route`` acts) before anything is sent. ``callsense serve`` or
    ``callsense webhooks deliver`` sends them; so does ``deliver`` here."""

    def __init__(
        self, outbox: Any, endpoints: Sequence[Endpoint], context: RouteContext | None = None
    ) -> None:
        self.outbox = outbox  # connectors.outbox.Outbox
        self.endpoints = list(endpoints)
        self.context = context or RouteContext()

    @classmethod
    def from_config(cls, cfg: Any, context: RouteContext | None = None) -> OutboxOutlet:
        """From an ``AppConfig`` (its ``webhooks:``, ``routing:`` and ``outbox:`` sections)."""
        from callsense.connectors.outbox import Outbox
        from callsense.connectors.storage import make_engine

        webhooks = cfg.webhooks_config()
        endpoints = webhooks.endpoints()
        outbox = Outbox(
            make_engine(webhooks.outbox.db_url),
            endpoints,
            lease_s=webhooks.outbox.lease_s,
            concurrency=webhooks.outbox.concurrency,
        )
        return cls(outbox, endpoints, context)

    async def __call__(self, decision: Decision) -> None:
        await asyncio.to_thread(self.outbox.enqueue_many, [decision], self.endpoints, self.context)

    async def deliver(self, deadline_s: float = 10.0) -> Any:
        """Send what is pending now (what is left stays for the next deliverer)."""
        return await self.outbox.adeliver_pending(deadline_s)


SpeakerRole = Literal["customer", "agent"]
