"""Live calls: PCM frames in, utterances, decisions and replies out while the call goes on.

A live call is the batch flow cut into pieces small enough to act on mid-call:

    frames (8/16 kHz, PCM16 or mu-law, mono or interleaved stereo)
      -> per channel: resample to 16 kHz, streaming FSMN-VAD (one shared model, one cache
         per channel), the segmentation rules of ``pipeline.segmentation`` applied as
         segments close (too short: dropped; too long: cut at the quietest point)
      -> ``RecognizerWorker``: one thread owns the recognizer and micro-batches the closed
         segments of every live call into one ``recognize`` call
      -> ``utterance_from`` -> the call's ``CallRun`` (NLU, rules, dialogue) -> events
      -> TTS for the replies, after their decisions went out (speech synthesis must not
         delay a decision)

Time is audio time: the samples received so far, never the wall clock, so a call streamed
faster than real time gets the same utterances and decisions as one streamed at 1x.
Errors inside a call become ``ErrorEvent``s; they never end the call or touch other calls.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field
from scipy.signal import firwin, lfilter

from pipeline.analyze import CallResult, build_orchestrator
from pipeline.audio import mulaw_to_float, speaker_for
from pipeline.config import CallsenseConfig
from pipeline.model import CallTranscript, Segment, Speaker, Utterance
from pipeline.orchestrator import CallRun, Orchestrator, SpokenReply, StageError, TtsStage
from pipeline.recognizer import LANGUAGES, Recognition, Recognizer
from pipeline.redact import Redactor
from pipeline.segmentation import lowest_energy_point
from pipeline.transcribe import utterance_from
from pipeline.tts import FallbackTts, OutputFormat
from pipeline.vad import FsmnPool, SpeechScorer, VadConfig
from rules.errors import ConfigError, InputError
from rules.model import Decision

__all__ = [
    "DecisionEvent",
    "EndEvent",
    "ErrorEvent",
    "LiveCall",
    "LiveConfig",
    "LiveEngine",
    "LiveEvent",
    "RecognizerWorker",
    "ReplyEvent",
    "StreamFormat",
    "StreamingVad",
    "UtteranceEvent",
]

log = logging.getLogger(__name__)

SAMPLE_RATE = 16000
Encoding = Literal["pcm16", "mulaw"]


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
    batch_forward: bool = Field(
        False,
        description="one padded forward pass per batch (GPUs); off: one pass per segment, "
        "shortest first, each answered as soon as it is done (CPUs gain <= 8% from batching, "
        "and a batch would hold its first answer back until its last is done)",
    )


@dataclass(frozen=True, slots=True)
class StreamFormat:
    """What the frames of one live call hold; ``roles`` overrides ``audio.channels``."""

    sample_rate: int = SAMPLE_RATE
    channels: int = 1
    encoding: Encoding = "pcm16"
    roles: Mapping[int, Speaker] | None = None
    language: str | None = None  # None: the config's recognizer.language

    def __post_init__(self) -> None:
        if self.sample_rate not in (8000, SAMPLE_RATE):
            raise InputError(f"sample_rate must be 8000 or 16000 (got {self.sample_rate})")
        if self.channels not in (1, 2):
            raise InputError(f"channels must be 1 or 2 (got {self.channels})")
        if self.encoding not in ("pcm16", "mulaw"):
            raise InputError(f"encoding must be pcm16 or mulaw (got {self.encoding!r})")
        if self.language is not None and self.language not in LANGUAGES:
            raise InputError(f"language must be one of {', '.join(LANGUAGES)}")
        for index in self.roles or {}:
            if not 0 <= index < self.channels:
                raise InputError(f"roles: channel {index} is not in a {self.channels}-channel call")

    @property
    def bytes_per_sample(self) -> int:
        return 2 if self.encoding == "pcm16" else 1


# --- events ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class UtteranceEvent:
    """An utterance, recognized; ``closed_at`` is the stream position when VAD closed it."""

    kind: ClassVar[str] = "utterance"
    utterance: Utterance
    closed_at: float


@dataclass(frozen=True, slots=True)
class DecisionEvent:
    """A decision; ``closed_at`` is that of the utterance that fired it (None: call end)."""

    kind: ClassVar[str] = "decision"
    decision: Decision
    closed_at: float | None


@dataclass(frozen=True, slots=True)
class ReplyEvent:
    kind: ClassVar[str] = "reply"
    reply: SpokenReply


@dataclass(frozen=True, slots=True)
class ErrorEvent:
    """Something failed for one utterance or step of this call; the call goes on."""

    kind: ClassVar[str] = "error"
    stage: str
    error: str
    message: str
    at: float | None = None


@dataclass(frozen=True, slots=True)
class EndEvent:
    """The last event of a call: everything it produced, summarized."""

    kind: ClassVar[str] = "end"
    result: CallResult


LiveEvent = UtteranceEvent | DecisionEvent | ReplyEvent | ErrorEvent | EndEvent


# --- the shared recognizer thread ----------------------------------------------------------


@dataclass(slots=True)
class _Request:
    clip: np.ndarray
    language: str
    future: Future[Recognition]


@dataclass(slots=True)
class WorkerStats:
    batches: int = 0
    clips: int = 0
    busy_s: float = 0.0


class RecognizerWorker:
    """Worker threads own the recognizer; requests from all calls are micro-batched.

    The first request of a batch waits at most ``max_wait_s`` for company, so a lone call
    pays a few milliseconds and a busy box gets fewer, fuller model calls. With
    ``threads > 1`` (a recognizer that runs calls concurrently, like ONNX Runtime's), a
    short segment does not wait behind a long one.
    """

    def __init__(
        self,
        recognizer: Recognizer,
        *,
        max_batch: int = 4,
        max_wait_s: float = 0.005,
        batch_forward: bool = True,
        threads: int = 1,
    ) -> None:
        self.recognizer = recognizer
        self.max_batch = max_batch
        self.max_wait_s = max_wait_s
        self.batch_forward = batch_forward
        self.stats = WorkerStats()
        self._queue: queue.Queue[_Request | None] = queue.Queue()
        self._closed = False
        self._stats_lock = threading.Lock()
        self._threads = [
            threading.Thread(target=self._run, name=f"callsense-recognizer-{i}", daemon=True)
            for i in range(max(1, threads))
        ]
        for thread in self._threads:
            thread.start()

    def submit(self, clip: np.ndarray, language: str = "auto") -> Future[Recognition]:
        future: Future[Recognition] = Future()
        if self._closed:
            future.set_exception(RuntimeError("the recognizer worker is closed"))
            return future
        self._queue.put(_Request(clip, language, future))
        return future

    def close(self, timeout: float | None = 10.0) -> None:
        """Finish what was submitted, then stop the thread."""
        if not self._closed:
            self._closed = True
            for _ in self._threads:
                self._queue.put(None)
        for thread in self._threads:
            thread.join(timeout)

    def _run(self) -> None:
        stop = False
        while not stop:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            deadline = time.monotonic() + self.max_wait_s
            while len(batch) < self.max_batch:
                remaining = deadline - time.monotonic()
                try:
                    item = (
                        self._queue.get(timeout=remaining)
                        if remaining > 0
                        else (self._queue.get_nowait())
                    )
                except queue.Empty:
                    break
                if item is None:
                    stop = True
                    break
                batch.append(item)
            self._recognize(batch)

    def _recognize(self, batch: list[_Request]) -> None:
        live = [r for r in batch if r.future.set_running_or_notify_cancel()]
        by_language: dict[str, list[_Request]] = {}
        for request in live:
            by_language.setdefault(request.language, []).append(request)
        groups: list[list[_Request]] = list(by_language.values())
        if not self.batch_forward:  # shortest first, each answered when done
            groups = [[r] for r in sorted(live, key=lambda r: r.clip.size)]
        for requests in groups:
            language = requests[0].language
            started = time.perf_counter()
            try:
                results = self.recognizer.recognize([r.clip for r in requests], language=language)
            except Exception as exc:
                log.warning("recognizer failed on a batch of %d: %s", len(requests),
                            type(exc).__name__)  # fmt: skip
                for r in requests:
                    r.future.set_exception(exc)
                continue
            finally:
                with self._stats_lock:
                    self.stats.busy_s += time.perf_counter() - started
            with self._stats_lock:
                self.stats.batches += 1
                self.stats.clips += len(requests)
            for r, result in zip(requests, results, strict=True):
                r.future.set_result(result)


# --- streaming VAD -------------------------------------------------------------------------


class StreamingVad:
    """FunASR FSMN-VAD in streaming mode: one loaded model, one cache per channel.

    ``step`` returns funasr's boundary pairs in ms from the channel's first sample:
    ``(beg, -1)`` speech started, ``(-1, end)`` it ended, ``(beg, end)`` both in this step.
    """

    def __init__(self, cfg: VadConfig, *, chunk_s: float = 0.2) -> None:
        if cfg.engine != "fsmn":
            raise ConfigError(
                f"live streaming needs vad.engine 'fsmn' (got {cfg.engine!r})", field="vad.engine"
            )
        self.chunk_ms = round(chunk_s * 1000)
        self._models = FsmnPool(cfg)
        self.scorer = SpeechScorer(cfg.speech_prob_threshold)

    def step(
        self, cache: dict[str, Any], samples: np.ndarray, *, final: bool
    ) -> list[tuple[int, int]]:
        x = np.require(samples, np.float32, ["C", "W"])
        with self._models.use() as model:
            out = model.generate(
                input=x, cache=cache, is_final=final, chunk_size=self.chunk_ms, disable_pbar=True
            )
        if not out:
            return []
        return [(int(a), int(b)) for a, b in out[0].get("value", [])]


class _Upsampler:
    """8 kHz -> 16 kHz across frame boundaries (a polyphase filter applied per 20 ms frame
    would ring at every frame edge). Same filter as ``pipeline.audio.resample`` (scipy's
    ``resample_poly`` default: Kaiser 5.0, cutoff at 8 kHz's Nyquist), so a live call's
    samples match a recording's. The filter's delay is dropped, so times stay exact."""

    _TAPS = 41  # 2 * 10 * max(up, down) + 1, as resample_poly

    def __init__(self) -> None:
        taps = firwin(self._TAPS, 0.5, window=("kaiser", 5.0))
        self.taps = (2.0 * taps).astype(np.float64)
        self.state = np.zeros(self._TAPS - 1)
        self.skip = (self._TAPS - 1) // 2

    def __call__(self, x: np.ndarray) -> np.ndarray:
        up = np.zeros(2 * x.size, dtype=np.float64)
        up[::2] = x
        y, self.state = lfilter(self.taps, 1.0, up, zi=self.state)
        if self.skip:
            drop = min(self.skip, y.size)
            y = y[drop:]
            self.skip -= drop
        return y.astype(np.float32)


@dataclass(frozen=True, slots=True)
class _Closed:
    """A segment VAD closed, with its audio and the stream position when it closed."""

    segment: Segment
    clip: np.ndarray
    closed_at: float


class _ChannelSegmenter:
    """One channel: buffers 16 kHz audio, steps the VAD, applies min/max/pad rules."""

    def __init__(self, channel: int, vad: StreamingVad, cfg: CallsenseConfig) -> None:
        self.channel = channel
        self.vad = vad
        self.seg = cfg.segmentation
        self.cache: dict[str, Any] = {}
        self.pending: list[np.ndarray] = []
        self.pending_n = 0
        self.buf = np.zeros(0, dtype=np.float32)
        self.buf_start = 0  # absolute sample index of buf[0]
        self.fed = 0  # samples given to the VAD so far
        self.open_start: float | None = None
        self.prev_end = 0.0
        self.chunk = int(vad.chunk_ms * SAMPLE_RATE / 1000)

    @property
    def position(self) -> float:
        return (self.fed + self.pending_n) / SAMPLE_RATE

    def add(self, samples: np.ndarray) -> None:
        if samples.size:
            self.pending.append(samples)
            self.pending_n += samples.size

    @property
    def ready(self) -> bool:
        return self.pending_n >= self.chunk

    def step(self, *, final: bool = False) -> list[_Closed]:
        """Run the VAD on what is pending (whole chunks, or everything when ``final``)."""
        if not self.pending_n and not final:
            return []
        data = np.concatenate(self.pending) if self.pending else np.zeros(0, np.float32)
        take = data.size if final else data.size - data.size % self.chunk
        now, rest = data[:take], data[take:]
        self.pending = [rest] if rest.size else []
        self.pending_n = rest.size
        self.buf = np.concatenate((self.buf, now)) if self.buf.size else now.copy()
        self.fed += now.size
        out: list[_Closed] = []
        if now.size or final:
            spans = self.vad.step(self.cache, now, final=final) if now.size else []
            for beg, end in spans:
                if beg >= 0:
                    self.open_start = beg / 1000.0
                if end >= 0 and self.open_start is not None:
                    out.extend(self._close(self.open_start, end / 1000.0))
                    self.open_start = None
        out.extend(self._cut_long())
        if final and self.open_start is not None:
            out.extend(self._close(self.open_start, self.fed / SAMPLE_RATE))
            self.open_start = None
        self._trim()
        return out

    def _cut_long(self) -> list[_Closed]:
        out: list[_Closed] = []
        cfg = self.seg
        pos = self.fed / SAMPLE_RATE
        while self.open_start is not None and pos - self.open_start >= cfg.max_utterance_s:
            start = self.open_start
            hi = start + cfg.max_utterance_s
            lo = max(start + cfg.min_utterance_s, hi - cfg.split_search_s)
            offset = self.buf_start / SAMPLE_RATE
            cut = offset + lowest_energy_point(self.buf, lo - offset, hi - offset, SAMPLE_RATE)
            if cut <= start:
                cut = hi
            out.extend(self._close(start, cut, pad_end=False))
            self.open_start = cut
        return out

    def _close(self, start: float, end: float, *, pad_end: bool = True) -> list[_Closed]:
        cfg = self.seg
        if end - start < cfg.min_utterance_s:
            return []  # a blip: nothing to recognize
        pos = self.fed / SAMPLE_RATE
        lo_limit = max(self.buf_start / SAMPLE_RATE, self.prev_end)
        padded_start = max(lo_limit, start - min(cfg.pad_s, (start - self.prev_end) / 2))
        padded_end = min(pos, end + cfg.pad_s) if pad_end else end
        self.prev_end = end
        a = max(0, round(padded_start * SAMPLE_RATE) - self.buf_start)
        b = max(a, round(padded_end * SAMPLE_RATE) - self.buf_start)
        clip = np.ascontiguousarray(self.buf[a:b])
        segment = Segment(
            channel=self.channel, start=round(padded_start, 4), end=round(padded_end, 4)
        )
        return [_Closed(segment, clip, closed_at=round(pos, 4))]

    def _trim(self) -> None:
        """Keep only the audio an open or next segment may still need."""
        keep_from = self.fed / SAMPLE_RATE - max(1.0, self.seg.pad_s)
        if self.open_start is not None:
            keep_from = min(keep_from, self.open_start - self.seg.pad_s)
        drop = int(keep_from * SAMPLE_RATE) - self.buf_start
        if drop > 0:
            self.buf = self.buf[drop:]
            self.buf_start += drop


# --- engine and calls ----------------------------------------------------------------------


class LiveEngine:
    """The shared part of live calls: streaming VAD, recognizer thread, stages, TTS."""

    def __init__(
        self,
        cfg: CallsenseConfig,
        recognizer: Recognizer,
        orchestrator: Orchestrator,
        *,
        live: LiveConfig | None = None,
        vad: StreamingVad | None = None,
    ) -> None:
        self.cfg = cfg
        self.live = live or LiveConfig()
        # PII is redacted as each utterance is made, before anything sees it (as in batch);
        # a missing encryption key for the sealed original fails here, at start-up
        self.redactor = Redactor(cfg.redaction)
        self.vad = vad or StreamingVad(cfg.vad, chunk_s=self.live.vad_chunk_s)
        # TTS runs after a turn's decisions went out, so it is taken out of the stages
        self.tts: FallbackTts | None = None
        stages = []
        for stage in orchestrator.stages:
            if isinstance(stage, TtsStage):
                self.tts = stage.tts
            else:
                stages.append(stage)
        self.orchestrator = Orchestrator(stages)
        self.worker = RecognizerWorker(
            recognizer,
            max_batch=self.live.max_batch,
            max_wait_s=self.live.max_wait_s,
            batch_forward=self.live.batch_forward,
            threads=self.live.workers,
        )

    @classmethod
    def from_config(cls, cfg: CallsenseConfig, live: LiveConfig | None = None) -> LiveEngine:
        """Load everything (the recognizer first: its errors name the model the user gave)."""
        from pipeline.recognizer import build_recognizer

        recognizer = build_recognizer(cfg.recognizer)
        return cls(cfg, recognizer, build_orchestrator(cfg), live=live)

    def open(
        self,
        call_id: str,
        fmt: StreamFormat | None = None,
        *,
        orchestrator: Orchestrator | None = None,
    ) -> LiveCall:
        """A new call; ``orchestrator`` overrides the stages (another policy set); its TTS
        stage, if any, is ignored (the engine's TTS speaks replies)."""
        stages = None
        if orchestrator is not None:
            stages = Orchestrator([s for s in orchestrator.stages if not isinstance(s, TtsStage)])
        return LiveCall(self, call_id, fmt or StreamFormat(), stages)

    def close(self) -> None:
        self.worker.close()


@dataclass(slots=True)
class _Queued:
    closed: _Closed
    speaker: Speaker
    future: Future[Recognition]


@dataclass(slots=True)
class _State:
    utterances: list[Utterance] = field(default_factory=list)
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
        orchestrator: Orchestrator | None = None,
    ) -> None:
        self.engine = engine
        self.call_id = call_id
        self.fmt = fmt
        self._run: CallRun = (orchestrator or engine.orchestrator).open(call_id)
        self._segmenters = [
            _ChannelSegmenter(i, engine.vad, engine.cfg) for i in range(fmt.channels)
        ]
        self._upsamplers = [
            _Upsampler() if fmt.sample_rate != SAMPLE_RATE else None for _ in range(fmt.channels)
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
        self._lock = asyncio.Lock()
        self._events: asyncio.Queue[LiveEvent] = asyncio.Queue()
        self._pending: asyncio.Queue[_Queued | None] = asyncio.Queue()
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
        turn = await asyncio.to_thread(self._run.start)
        self._emit_errors(turn.errors)
        if turn.replies:
            self._replies.put_nowait(turn.replies)

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
        raw = data[:whole]
        if self.fmt.encoding == "pcm16":
            samples = np.frombuffer(raw, dtype="<i2").astype(np.float32) / 32768.0
        else:
            samples = mulaw_to_float(raw)
        block = samples.reshape(-1, self.fmt.channels)
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
        if self.fmt.encoding == "pcm16":
            if len(data) % 2:
                raise InputError("a pcm16 frame must have an even number of bytes")
            samples = np.frombuffer(data, dtype="<i2").astype(np.float32) / 32768.0
        else:
            samples = mulaw_to_float(data)
        if at is not None:
            gap = round((at - self._segmenters[channel].position) * self.fmt.sample_rate)
            if gap > self.fmt.sample_rate // 100:  # more than 10 ms missing
                samples = np.concatenate((np.zeros(gap, np.float32), samples))
        async with self._lock:
            self._add(channel, samples)
            await self._step_ready()

    def _add(self, channel: int, samples: np.ndarray) -> None:
        up = self._upsamplers[channel]
        self._segmenters[channel].add(up(samples) if up is not None else samples.copy())

    async def _step_ready(self) -> None:
        """Step the VAD of channels with a whole chunk pending (caller holds ``_lock``)."""
        if not any(s.ready for s in self._segmenters):
            return
        queued = await asyncio.to_thread(self._step_all, False)
        self._enqueue(queued)

    def _step_all(self, final: bool) -> list[_Queued]:
        """VAD step; each closed segment goes to the recognizer at once, and is marked
        speech or sound while the recognizer works on it (the mark is off the latency path)."""
        out: list[tuple[int, _Closed]] = []
        for seg in self._segmenters:
            if final or seg.ready:
                out.extend((seg.channel, c) for c in seg.step(final=final))
        out.sort(key=lambda item: (item[1].segment.end, item[0]))
        futures = [self.engine.worker.submit(c.clip, self.language) for _, c in out]
        return [
            _Queued(self._mark(c), self._speakers[ch], future)
            for (ch, c), future in zip(out, futures, strict=True)
        ]

    def _mark(self, closed: _Closed) -> _Closed:
        """speech or sound, from silero over the clip (as the batch VAD marks its segments)."""
        seg = closed.segment
        local = Segment(channel=seg.channel, start=0.0, end=closed.clip.size / SAMPLE_RATE)
        marked = self.engine.vad.scorer.mark([local], closed.clip)[0]
        return replace(
            closed, segment=replace(seg, source=marked.source, speech_prob=marked.speech_prob)
        )

    def _enqueue(self, queued: Sequence[_Queued]) -> None:
        for item in queued:
            self._pending.put_nowait(item)

    async def close(self) -> CallResult:
        """Flush open segments, finish every pending result, close the stages; idempotent."""
        if self._state.result is not None:
            return self._state.result
        self._state.closed = True
        if not self._state.started:
            await self.start()
        try:
            async with self._lock:
                queued = await asyncio.to_thread(self._step_all, True)
            self._enqueue(queued)
        except Exception as exc:
            self._error("vad", exc, self.position)
        self._pending.put_nowait(None)
        await self._tasks[0]
        duration = round(self.position, 3)
        turn = await asyncio.to_thread(self._run.close, duration)
        for decision in turn.decisions:
            self._events.put_nowait(DecisionEvent(decision, None))
        self._emit_errors(turn.errors)
        if turn.replies:
            self._replies.put_nowait(turn.replies)
        self._replies.put_nowait(None)
        await self._tasks[1]
        utterances = tuple(sorted(self._state.utterances, key=lambda u: (u.start, u.channel)))
        transcript = CallTranscript(
            call_id=self.call_id,
            utterances=utterances,
            duration=duration,
            channels=self.fmt.channels,
            source="live",
        )
        result = CallResult.from_run(transcript, self._run, self.engine.cfg)
        self._state.result = result
        self._events.put_nowait(EndEvent(result))
        log.info("live call %s closed: %d utterances, %d decisions, %.1f s", self.call_id,
                 len(utterances), len(result.decisions), duration)  # fmt: skip
        return result

    async def events(self) -> AsyncIterator[LiveEvent]:
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
            seg,
            recognition,
            call_id=self.call_id,
            speaker=item.speaker,
            cfg=self.engine.cfg,
            redactor=self.engine.redactor,
        )
        turn = await asyncio.to_thread(self._run.feed, utterance)
        self._state.utterances.append(utterance)
        self._events.put_nowait(UtteranceEvent(utterance, item.closed.closed_at))
        for decision in turn.decisions:
            self._events.put_nowait(DecisionEvent(decision, item.closed.closed_at))
        self._emit_errors(turn.errors)
        if turn.replies:
            self._replies.put_nowait(turn.replies)

    async def _speak(self) -> None:
        while True:
            replies = await self._replies.get()
            if replies is None:
                return
            for item in replies:
                spoken, error = item, None
                if self.engine.tts is not None and item.audio is None:
                    try:
                        spoken, error = await asyncio.to_thread(self._tts, item)
                    except Exception as exc:
                        error = StageError("tts", type(exc).__name__, str(exc), item.reply.at)
                if error is not None:
                    self._emit_errors((error,))
                self._events.put_nowait(ReplyEvent(spoken))

    def _tts(self, item: SpokenReply) -> tuple[SpokenReply, StageError | None]:
        assert self.engine.tts is not None
        result = self.engine.tts.speak(item.reply.text, item.reply.lang, OutputFormat.WAV16K)
        spoken = replace(item, audio=result.data, engine=result.engine,
                         duration_s=result.duration_s)  # fmt: skip
        return spoken, None

    def _emit_errors(self, errors: Sequence[StageError]) -> None:
        for e in errors:
            self._events.put_nowait(ErrorEvent(e.stage, e.kind, e.message, e.at))

    def _error(self, stage: str, exc: BaseException, at: float | None) -> None:
        log.warning("live call %s: %s failed: %s", self.call_id, stage, type(exc).__name__)
        self._events.put_nowait(ErrorEvent(stage, type(exc).__name__, str(exc), at))
