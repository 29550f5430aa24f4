"""Live calls: PCM frames in, utterances, decisions and replies out while the call goes on.

A live call is the batch flow cut into pieces small enough to act on mid-call:

    frames (8/16 kHz, PCM16 or mu-law, mono or interleaved stereo)
      -> per channel: resample to 16 kHz, streaming FSMN-VAD (one shared model, one cache
         per channel), the segmentation rules of ``pipeline.segmentation`` applied as
         segments close (too short: dropped; too long: cut at the quietest point)
      -> ``RecognizerWorker``: one thread owns the recognizer and micro-batches the closed
         segments of every live call into one ``recognize`` call
      -> ``utterance_from`` -> the call's ``CallSession`` (privacy guard, NLU, rules,
         dialogue) -> events, exactly as a recording's utterances
      -> TTS for the replies, after their decisions went out (speech synthesis must not
         delay a decision)

Time is audio time: the samples received so far, never the wall clock, so a call streamed
faster than real time gets the same utterances and decisions as one streamed at 1x.
Errors inside a call become ``ErrorEvent``s; they never end the call or touch other calls.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import ParamSpec, TypeVar

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from callsense.core.errors import InputError
from callsense.pipeline.analyze import build_flow
from callsense.pipeline.audio import Upsampler, speaker_for
from callsense.pipeline.config import CallsenseConfig
from callsense.pipeline.events import CallEvent, EndEvent, ReplyEvent
from callsense.pipeline.live_channel import ChannelSegmenter, ClosedSegment
from callsense.pipeline.live_format import SAMPLE_RATE, StreamFormat
from callsense.pipeline.model import Gap, Speaker
from callsense.pipeline.recognizer import Recognition, Recognizer
from callsense.pipeline.recognizer_worker import RecognizerWorker
from callsense.pipeline.session import CallFlow, CallSession
from callsense.pipeline.stages import SpokenReply
from callsense.pipeline.summary import CallResult
from callsense.pipeline.transcribe import utterance_from
from callsense.pipeline.tts import FallbackTts, OutputFormat
from callsense.pipeline.vad import StreamingVad

__all__ = ["LiveCall", "LiveConfig", "LiveEngine", "StreamFormat"]

log = logging.getLogger(__name__)

# Threads for the blocking steps of every live call of an engine (VAD, a turn through the
# stages, waiting for the recognizer, storing). Most of them wait on the recognizer thread,
# so many are cheap; they are the engine's own so that no other blocking work queues ahead.
LIVE_THREADS = 32

P = ParamSpec("P")
T = TypeVar("T")


class LiveConfig(BaseModel):
    """Knobs of live calls (latency against CPU)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    vad_chunk_s: float = Field(
        0.2, gt=0, le=1.0, description="audio fed to the streaming VAD per step"
    )
    max_batch: int = Field(4, ge=1, description="segments recognized together, across calls")
    max_wait_s: float = Field(
        0.005, ge=0, description="how long a batch waits for more segments after its first"
    )
    workers: int = Field(
        1,
        ge=1,
        le=16,
        description="recognizer threads; ONNX Runtime runs them concurrently, so a short "
        "segment need not queue behind a long one (the torch backend serializes them). On "
        "2 cores, 2 workers measured no better than 1 (8-stream p95 284 vs 256-280 ms, p50 worse)",
    )
    open_timeout_s: float = Field(
        10.0, gt=0, description="a live connection that has not started its call by then is closed"
    )
    idle_timeout_s: float = Field(
        60.0,
        gt=0,
        description="a live connection that sends nothing (no audio, no ping) this long is "
        "closed; its call keeps what it received",
    )
    max_gap_s: float = Field(
        1800.0,
        gt=0,
        le=86400,
        description="the longest stretch of call time a platform may skip at once (a hold, "
        "discarded audio, a reconnect, a jump in Twilio's timestamps); beyond it the session "
        "ends with an error. Silence is fed in steps, so a long gap costs no memory",
    )
    batch_forward: bool = Field(
        False,
        description="one padded forward pass per batch (GPUs); off: one pass per segment, "
        "shortest first, each answered as soon as it is done (CPUs gain <= 8% from batching, "
        "and a batch would hold its first answer back until its last is done)",
    )


# --- engine and calls ----------------------------------------------------------------------


class LiveEngine:
    """The shared part of live calls: streaming VAD, recognizer thread, stages, TTS."""

    def __init__(
        self,
        cfg: CallsenseConfig,
        recognizer: Recognizer,
        flow: CallFlow,
        *,
        live: LiveConfig | None = None,
        vad: StreamingVad | None = None,
    ) -> None:
        self.cfg = cfg
        self.live = live or LiveConfig()
        self.vad = vad or StreamingVad(cfg.vad, chunk_s=self.live.vad_chunk_s)
        # TTS runs after a turn's decisions went out, so it is taken out of the stages
        self.tts: FallbackTts | None = flow.tts
        self.flow = flow.without_tts()
        self.worker = RecognizerWorker(
            recognizer,
            max_batch=self.live.max_batch,
            max_wait_s=self.live.max_wait_s,
            batch_forward=self.live.batch_forward,
            threads=self.live.workers,
        )
        # Not the event loop's default pool: a burst of other blocking work there (500
        # WebSocket upgrades checking their keys, a big transcript's redaction) would queue
        # ahead of every live call's next step.
        self._threads = ThreadPoolExecutor(LIVE_THREADS, thread_name_prefix="live-call")

    @classmethod
    def from_config(cls, cfg: CallsenseConfig, live: LiveConfig | None = None) -> LiveEngine:
        """Load everything (the recognizer first: its errors name the model the user gave)."""
        from callsense.pipeline.recognizer import build_recognizer

        recognizer = build_recognizer(cfg.recognizer)
        return cls(cfg, recognizer, build_flow(cfg), live=live)

    def open(
        self,
        call_id: str,
        fmt: StreamFormat | None = None,
        *,
        flow: CallFlow | None = None,
        speak: bool = True,
    ) -> LiveCall:
        """A new call; ``flow`` overrides the engine's (another policy set); its TTS stage,
        if any, is ignored (the engine's TTS speaks replies). ``speak=False``: a monitor
        (AudioHook) that never plays audio back gets its replies as text only."""
        return LiveCall(self, call_id, fmt or StreamFormat(), flow, speak=speak)

    async def run(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """``fn(*args, **kwargs)`` on the live calls' own threads (see ``LIVE_THREADS``)."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._threads, functools.partial(fn, *args, **kwargs))

    def close(self) -> None:
        self.worker.close()
        self._threads.shutdown(wait=False, cancel_futures=True)


@dataclass(slots=True)
class _Queued:
    closed: ClosedSegment
    speaker: Speaker
    future: Future[Recognition]


@dataclass(slots=True)
class _State:
    started: bool = False
    closed: bool = False
    result: CallResult | None = None


class LiveCall:
    """One streaming call. ``start``, then ``feed`` frames, then ``close``; read ``events``.

    ``feed``/``feed_channel`` are awaited one at a time by the connection that owns the
    call; the model work runs in threads, never on the event loop.
    """

    def __init__(
        self,
        engine: LiveEngine,
        call_id: str,
        fmt: StreamFormat,
        flow: CallFlow | None = None,
        *,
        speak: bool = True,
    ) -> None:
        self.engine = engine
        self.call_id = call_id
        self.fmt = fmt
        self.speak = speak and engine.tts is not None
        flow = flow.without_tts() if flow is not None else engine.flow
        self._session: CallSession = flow.open(call_id, channels=fmt.channels, source="live")
        self._segmenters = [
            ChannelSegmenter(i, engine.vad, engine.cfg) for i in range(fmt.channels)
        ]
        self._upsamplers = [
            Upsampler() if fmt.sample_rate != SAMPLE_RATE else None for _ in range(fmt.channels)
        ]
        audio_cfg = engine.cfg.audio
        if fmt.roles is not None:
            audio_cfg = audio_cfg.model_copy(update={"channels": dict(fmt.roles)})
        self._speakers = [speaker_for(i, fmt.channels, audio_cfg) for i in range(fmt.channels)]
        if fmt.channels == 1 and fmt.roles and 0 in fmt.roles:
            # a one-track stream says whose track it is (Twilio's outbound only, an AudioHook
            # "internal" channel): that beats audio.mono_speaker, which is for mixed calls
            self._speakers = [fmt.roles[0]]
        self.language = fmt.language or engine.cfg.recognizer.language
        self._remainder = b""
        self._received = [0] * fmt.channels  # samples per channel, at the stream's rate
        self._lock = asyncio.Lock()
        self._events: asyncio.Queue[CallEvent] = asyncio.Queue()
        self._pending: asyncio.Queue[_Queued | Gap | None] = asyncio.Queue()
        self._held: list[_Queued] = []  # closed, waiting for their turn (see _enqueue)
        self._replies: asyncio.Queue[tuple[SpokenReply, ...] | None] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []
        self._state = _State()

    @property
    def position(self) -> float:
        """Audio seconds received so far (the longest channel)."""
        return max(s.position for s in self._segmenters)

    @property
    def closed(self) -> bool:
        return self._state.closed

    async def start(self) -> None:
        """Open the call's stages (the dialogue may greet) and start the result tasks."""
        if self._state.started:
            return
        self._state.started = True
        self._tasks = [
            asyncio.create_task(self._consume(), name=f"live-{self.call_id}-results"),
            asyncio.create_task(self._speak(), name=f"live-{self.call_id}-tts"),
        ]
        self._dispatch(await self.engine.run(self._session.start))

    async def feed(self, data: bytes) -> None:
        """Interleaved frames in the stream's format (a split frame is carried over)."""
        if self._state.closed:
            raise InputError(f"call {self.call_id} is closed")
        async with self._lock:
            await self._feed_interleaved(bytes(data))

    async def _feed_interleaved(self, data: bytes) -> None:
        data = self._remainder + data
        frame = self.fmt.bytes_per_sample * self.fmt.channels
        whole = len(data) - len(data) % frame
        self._remainder = data[whole:]
        if not whole:
            return
        block = self.fmt.decode(data[:whole]).reshape(-1, self.fmt.channels)
        for i in range(self.fmt.channels):
            self._add(i, block[:, i])
        await self._step_ready()

    async def feed_channel(self, channel: int, data: bytes, *, at: float | None = None) -> None:
        """One channel's mono frames (Twilio tracks). ``at`` (seconds from the stream's
        start) places them: a gap since that channel's last frame is filled with silence."""
        if self._state.closed:
            raise InputError(f"call {self.call_id} is closed")
        if not 0 <= channel < self.fmt.channels:
            raise InputError(f"channel {channel} is not in a {self.fmt.channels}-channel call")
        if len(data) % self.fmt.bytes_per_sample:
            raise InputError("a pcm16 frame must have an even number of bytes")
        samples = self.fmt.decode(data)
        if at is not None and at - self._received_s(channel) > 0.01:
            await self._silence(at, channels=(channel,))  # more than 10 ms missing
        async with self._lock:
            self._add(channel, samples)
            await self._step_ready()

    async def gap(self, gap: Gap) -> None:
        """The platform did not stream ``gap`` (a pause, discarded audio, a reconnect): the
        timeline moves past it in silence, so later audio keeps its platform time, and the
        session marks it (the rules decide per policy whether a streak runs across it)."""
        await self.extend_to(gap.end)
        self._pending.put_nowait(gap)

    async def extend_to(self, at: float) -> None:
        """Silence up to ``at`` s on every channel behind it (the platform's position at a
        gap's end or at the close is where its timeline is)."""
        if self._state.closed:
            raise InputError(f"call {self.call_id} is closed")
        async with self._lock:
            self._remainder = b""
        await self._silence(at, channels=range(self.fmt.channels))

    async def _silence(self, at: float, channels: Sequence[int]) -> None:
        """Fill ``channels`` with silence up to ``at`` s, one second at a time (memory stays
        flat, other calls run between the steps); a jump beyond ``max_gap_s`` is an error."""
        rate = self.fmt.sample_rate
        longest = max(at - self._received_s(ch) for ch in channels)
        if longest > self.engine.live.max_gap_s:
            raise InputError(
                f"call {self.call_id}: the stream skips {longest:.0f} s at once, more than "
                f"live.max_gap_s ({self.engine.live.max_gap_s:.0f} s)"
            )
        while True:
            async with self._lock:
                behind = False
                for ch in channels:
                    missing = min(round(at * rate) - self._received[ch], rate)
                    if missing > 0:
                        self._add(ch, np.zeros(missing, np.float32))
                        behind = True
                await self._step_ready()
            if not behind:
                return

    def _received_s(self, channel: int) -> float:
        """Seconds of ``channel`` received (input side: the upsampler's delay aside)."""
        return self._received[channel] / self.fmt.sample_rate

    def _add(self, channel: int, samples: np.ndarray) -> None:
        self._received[channel] += samples.size
        up = self._upsamplers[channel]
        self._segmenters[channel].add(up(samples) if up is not None else samples.copy())

    async def _step_ready(self) -> None:
        """Step the VAD of channels with a whole chunk pending (caller holds ``_lock``)."""
        if not any(s.ready for s in self._segmenters):
            return
        self._enqueue(*await self.engine.run(self._step_all, False))

    def _step_all(self, final: bool) -> tuple[list[_Queued], list[float]]:
        """VAD step; each closed segment goes to the recognizer at once, and is marked
        speech or sound while the recognizer works on it (the mark is off the latency path).
        Also, per channel: no segment it closes later ends before that time."""
        out: list[tuple[int, ClosedSegment]] = []
        for seg in self._segmenters:
            if final or seg.ready:
                out.extend((seg.channel, c) for c in seg.step(final=final))
        out.sort(key=lambda item: (item[1].segment.end, item[0]))
        futures = [self.engine.worker.submit(c.clip, self.language) for _, c in out]
        queued = [
            _Queued(self._mark(c), self._speakers[ch], future)
            for (ch, c), future in zip(out, futures, strict=True)
        ]
        return queued, [seg.earliest_end() for seg in self._segmenters]

    def _mark(self, closed: ClosedSegment) -> ClosedSegment:
        """speech or sound, scored as a recording's segments are (``pipeline.speech_scoring``)."""
        scores = self._segmenters[closed.segment.channel].scores
        marked = self.engine.vad.scorer.mark([closed.segment], closed.context, scores)[0]
        return replace(closed, segment=marked)

    def _enqueue(self, queued: Sequence[_Queued], frontiers: Sequence[float]) -> None:
        """Hand segments to the stages in the order they end, as a recording's utterances
        are: one waits while another channel may still close one that ends earlier (only
        while both speak at once; in turn-taking that bound is already past when VAD closes
        a segment, and a channel's own later segments always end later)."""
        self._held.extend(queued)
        self._held.sort(key=lambda q: (q.closed.segment.end, q.closed.segment.channel))
        while self._held:
            seg = self._held[0].closed.segment
            others = [f for ch, f in enumerate(frontiers) if ch != seg.channel]
            if others and seg.end > min(others):
                break
            self._pending.put_nowait(self._held.pop(0))

    async def close(self, until: float | None = None) -> CallResult:
        """Flush open segments, finish every pending result, close the stages; idempotent.
        ``until``: the platform's position at the end (the call lasts at least that long)."""
        if self._state.result is not None:
            return self._state.result
        if until is not None and not self._state.closed:
            await self.extend_to(until)
        self._state.closed = True
        if not self._state.started:
            await self.start()
        try:
            async with self._lock:
                for channel, up in enumerate(self._upsamplers):
                    if up is not None:  # the filter's last samples, as a recording has them
                        self._segmenters[channel].add(up.flush())
                queued, _ = await self.engine.run(self._step_all, True)
            self._enqueue(queued, [])
        except Exception as exc:
            self._error("vad", exc, self.position)
            self._enqueue([], [])
        self._pending.put_nowait(None)
        await self._tasks[0]
        duration = round(self.position, 3)
        self._dispatch(await self.engine.run(self._session.end, duration))
        self._replies.put_nowait(None)
        await self._tasks[1]  # the replies are spoken before the call's result is made
        end = self._session.finish()
        result = end.result
        self._state.result = result
        self._events.put_nowait(end)
        log.info("live call %s closed: %d utterances, %d decisions, %.1f s", self.call_id,
                 len(result.transcript.utterances), len(result.decisions), duration)  # fmt: skip
        return result

    async def events(self) -> AsyncIterator[CallEvent]:
        """Every event of the call in order, ending with its ``EndEvent``."""
        while True:
            event = await self._events.get()
            yield event
            if isinstance(event, EndEvent):
                return

    async def _consume(self) -> None:
        while True:
            item = await self._pending.get()
            if item is None:
                return
            if isinstance(item, Gap):
                await self.engine.run(self._session.gap, item)
                continue
            try:
                await self._one(item)
            except Exception as exc:
                self._error("live", exc, item.closed.segment.end)

    async def _one(self, item: _Queued) -> None:
        seg = item.closed.segment
        try:
            recognition = await asyncio.wrap_future(item.future)
        except Exception as exc:
            self._error("recognizer", exc, seg.end)
            return
        utterance = utterance_from(
            seg, recognition, call_id=self.call_id, speaker=item.speaker, cfg=self.engine.cfg
        )
        feed = functools.partial(self._session.feed, utterance, closed_at=item.closed.closed_at)
        self._dispatch(await self.engine.run(feed))

    def _dispatch(self, events: Sequence[CallEvent]) -> None:
        """A turn's events to the listener; its replies to the TTS task first (speech
        synthesis must not delay the turn's decisions)."""
        replies = tuple(e.reply for e in events if isinstance(e, ReplyEvent))
        for event in events:
            if not isinstance(event, ReplyEvent):
                self._events.put_nowait(event)
        if replies:
            self._replies.put_nowait(replies)

    async def _speak(self) -> None:
        while True:
            replies = await self._replies.get()
            if replies is None:
                return
            for item in replies:
                spoken = item
                if self.speak and item.audio is None:
                    try:
                        spoken = await self.engine.run(self._tts, item)
                    except Exception as exc:
                        self._error("tts", exc, item.reply.at)
                    else:
                        self._session.spoke(spoken)
                self._events.put_nowait(ReplyEvent(spoken))

    def _tts(self, item: SpokenReply) -> SpokenReply:
        assert self.engine.tts is not None
        result = self.engine.tts.speak(item.reply.text, item.reply.lang, OutputFormat.WAV16K)
        return replace(item, audio=result.data, engine=result.engine, duration_s=result.duration_s)

    def _error(self, stage: str, exc: BaseException, at: float | None) -> None:
        self._events.put_nowait(self._session.error(stage, exc, at))
