"""callsense inside a Pipecat pipeline (``pip install 'callsense[pipecat]'``).

Two ways in, both on callsense's one live flow (``LiveEngine``: the shared recognizer
worker, the call's ``CallSession`` with the privacy guard, the policies and the audit):

``CallsenseProcessor`` — put it right after ``transport.input()``. It drives a
``LiveCall`` the way the service's live routes do: every customer audio frame goes on
unchanged and at once, and a copy is fed (resampled to the call's format when the
transport speaks another rate) to callsense's streaming VAD, the same ``Segmenter`` as a
recording, the recognizer and the session. Out come ``CallsenseUtteranceFrame``s and
``CallsenseDecisionFrame``s (``SystemFrame``s: an interruption does not cancel them), the
configured reactions (``PipecatConfig.reactions``) and, at the end, ``CallsenseEndFrame``.

``CallsenseSTTService`` — a ``SegmentedSTTService`` for bots that segment with Pipecat's
VAD: each segment (raw PCM, never a WAV header read as audio) is recognized by SenseVoice
and goes through the same session, so the ``TranscriptionFrame`` carries the *detected*
language and, in ``result``, the guarded ``Utterance`` with its tags and confidences; the
decisions follow as frames, as from the processor.

Transcript text goes to the pipeline only: logs name call ids, tags and rules.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import deque
from collections.abc import AsyncGenerator, Sequence
from typing import Any

from pipecat.frames.frames import (
    CancelFrame,
    EndFrame,
    EndWorkerFrame,
    Frame,
    InputAudioRawFrame,
    LLMMessagesAppendFrame,
    StartFrame,
    TranscriptionFrame,
    TTSSpeakFrame,
    UserAudioRawFrame,
    VADUserStoppedSpeakingFrame,
)
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pipecat.services.settings import STTSettings
from pipecat.services.stt_service import SegmentedSTTService
from pipecat.utils.time import time_now_iso8601

from callsense.connectors.integrations.common import (
    CallAudio,
    DecisionOutlet,
    pcm16_mono,
    recognize_clip,
    wants,
)
from callsense.connectors.integrations.pipecat_frames import (
    CallsenseDecisionFrame,
    CallsenseEndFrame,
    CallsenseUtteranceFrame,
    ContextReaction,
    HandoffReaction,
    PipecatConfig,
    pipecat_language,
)
from callsense.pipeline.audio import SAMPLE_RATE
from callsense.pipeline.events import CallEvent, DecisionEvent, EndEvent, UtteranceEvent
from callsense.pipeline.live import LiveCall, LiveEngine, StreamFormat
from callsense.pipeline.session import CallFlow, CallSession
from callsense.pipeline.summary import CallResult

__all__ = [
    "CallsenseDecisionFrame",
    "CallsenseEndFrame",
    "CallsenseProcessor",
    "CallsenseSTTService",
    "CallsenseUtteranceFrame",
    "ContextReaction",
    "HandoffReaction",
    "PipecatConfig",
]

log = logging.getLogger(__name__)

_EVENTS = ("on_utterance", "on_decision", "on_call_end")


class _Reacting(FrameProcessor):
    """What both ways in do with the session's events: frames out, decisions to the
    outlet, the configured reactions, the event handlers (``on_utterance``,
    ``on_decision``, ``on_call_end``)."""

    def __init__(
        self,
        engine: LiveEngine,
        *,
        call_id: str | None,
        config: PipecatConfig | None,
        flow: CallFlow | None,
        outlet: DecisionOutlet | None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.engine = engine
        self.call_id = call_id or f"pipecat-{uuid.uuid4().hex[:12]}"
        self.config = config or PipecatConfig()
        self.flow = flow
        self.outlet = outlet
        self.result: CallResult | None = None
        for name in _EVENTS:
            self._register_event_handler(name)

    async def _emit(self, event: CallEvent) -> None:
        """One session event into the pipeline; a failing outlet or handler is logged and
        the call goes on."""
        try:
            if isinstance(event, UtteranceEvent):
                frame: Frame = CallsenseUtteranceFrame(event.utterance, event.closed_at)
                await self.push_frame(frame)
                await self._call_event_handler("on_utterance", frame)
            elif isinstance(event, DecisionEvent):
                await self._decided(CallsenseDecisionFrame(event.decision, event.closed_at))
            elif isinstance(event, EndEvent):
                self.result = event.result
                await self.push_frame(CallsenseEndFrame(event.result))
                await self._call_event_handler("on_call_end", event.result)
        except Exception as exc:
            log.warning("pipecat call %s: %s event failed: %s", self.call_id, event.kind,
                        type(exc).__name__)  # fmt: skip

    async def _decided(self, frame: CallsenseDecisionFrame) -> None:
        d = frame.decision
        log.info("pipecat call %s: decision %s (%s) at %.2f", self.call_id, d.rule, d.action, d.at)
        await self.push_frame(frame)
        if self.outlet is not None:
            await self.outlet(d)
        await self._call_event_handler("on_decision", frame)
        for reaction in self.config.reactions:
            if wants(reaction, d):
                await self._react(reaction, frame)

    async def _react(self, reaction: ContextReaction | HandoffReaction, frame: Any) -> None:
        if isinstance(reaction, ContextReaction):
            message = {"role": reaction.role, "content": reaction.render(frame.decision)}
            await self.push_frame(LLMMessagesAppendFrame([message], run_llm=reaction.run_llm))
            return
        if reaction.interrupt:
            await self.broadcast_interruption()
        if reaction.say:
            await self.push_frame(TTSSpeakFrame(reaction.say))
        if reaction.end:
            await self.push_frame(EndWorkerFrame(reason=f"callsense: {frame.rule}"))


class CallsenseProcessor(_Reacting):
    """The customer's audio through callsense's live call; see the module doc.

    ``engine``: one per process (``LiveEngine.from_config``), shared by every pipeline.
    ``flow``: another policy set for this call. ``outlet``: where decisions go besides the
    pipeline (``OutboxOutlet``: webhooks and routing targets, as the live routes do).
    """

    def __init__(
        self,
        engine: LiveEngine,
        *,
        call_id: str | None = None,
        config: PipecatConfig | None = None,
        flow: CallFlow | None = None,
        outlet: DecisionOutlet | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(engine, call_id=call_id, config=config, flow=flow, outlet=outlet, **kwargs)
        self.call: LiveCall | None = None
        self._audio: CallAudio | None = None
        self._pending: asyncio.Queue[bytes | None] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []
        self._refused = False

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, InputAudioRawFrame) and direction is FrameDirection.DOWNSTREAM:
            await self.push_frame(frame, direction)  # first: the bot never waits for us
            if self._wanted(frame):
                await self._take(frame)
            return
        if isinstance(frame, EndFrame):
            await self._finish()
        elif isinstance(frame, CancelFrame):
            await self._stop_tasks()
        await self.push_frame(frame, direction)

    def _wanted(self, frame: InputAudioRawFrame) -> bool:
        user = self.config.user_id
        return user is None or (isinstance(frame, UserAudioRawFrame) and frame.user_id == user)

    async def _take(self, frame: InputAudioRawFrame) -> None:
        """A copy of the frame for the call's feeder (the call opens on the first frame,
        in the format the transport delivers)."""
        if self._refused:
            return
        try:
            if self._audio is None:
                self._audio = CallAudio.for_frames(frame.sample_rate, frame.num_channels)
                await self._open(self._audio)
            self._pending.put_nowait(self._audio(frame.audio, frame.sample_rate,
                                                 frame.num_channels))  # fmt: skip
        except Exception as exc:  # a frame the call cannot take: logged, the call goes on
            log.warning("pipecat call %s: audio frame skipped: %s", self.call_id, exc)
            if self.call is None:  # the call could not open: say so once, not per frame
                self._refused = True

    async def _open(self, audio: CallAudio) -> None:
        roles = {0: self.config.speaker} if audio.channels == 1 else None
        fmt = StreamFormat(audio.call_rate, audio.channels, "pcm16", roles, self.config.language)
        self.call = self.engine.open(self.call_id, fmt, flow=self.flow, speak=False)
        await self.call.start()
        self._tasks = [
            self.create_task(self._feed(self.call), f"callsense-{self.call_id}-feed"),
            self.create_task(self._pump(self.call), f"callsense-{self.call_id}-events"),
        ]
        log.info("pipecat call %s: open (%d ch, %d Hz in, %d Hz call)", self.call_id,
                 audio.channels, fmt.sample_rate, audio.call_rate)  # fmt: skip

    async def _feed(self, call: LiveCall) -> None:
        """The call's audio in arrival order, off the frame path (the VAD step runs in a
        thread; the pipeline's frames never wait for it)."""
        while (data := await self._pending.get()) is not None:
            try:
                await call.feed(data)
            except Exception as exc:
                log.warning("pipecat call %s: feeding failed: %s", self.call_id,
                            type(exc).__name__)  # fmt: skip

    async def _pump(self, call: LiveCall) -> None:
        async for event in call.events():
            await self._emit(event)

    async def _finish(self) -> None:
        """End of the pipeline: what the call holds is flushed, its last utterances and
        decisions and its result go out before the ``EndFrame``."""
        call, audio = self.call, self._audio
        if call is None or audio is None or call.closed:
            return
        tail = audio.flush()
        if tail:
            self._pending.put_nowait(tail)
        self._pending.put_nowait(None)
        await self._tasks[0]
        self.result = await call.close()
        await self._tasks[1]

    async def _stop_tasks(self) -> None:
        """A cancelled pipeline drops the call at once (as Pipecat's services drop their
        queued work on a ``CancelFrame``)."""
        for task in self._tasks:
            await self.cancel_task(task)
        self._tasks = []

    async def cleanup(self) -> None:
        await super().cleanup()
        await self._stop_tasks()


class CallsenseSTTService(_Reacting, SegmentedSTTService):
    """SenseVoice as Pipecat's STT, on Pipecat's VAD segments; see the module doc.

    ``trailing_silence_secs`` defaults to 0: SenseVoice needs no padding to finish a word,
    and a segment already ends with the VAD's stop silence. ``ttfs_p99_latency`` (speech
    end to transcript, for Pipecat's turn strategies): a 10 s segment takes up to ~0.9 s
    with the torch fp32 backend on 2 cores, ~0.35 s with ONNX int8 (``bench/recognizer.py``)."""

    def __init__(
        self,
        engine: LiveEngine,
        *,
        call_id: str | None = None,
        config: PipecatConfig | None = None,
        flow: CallFlow | None = None,
        outlet: DecisionOutlet | None = None,
        trailing_silence_secs: float = 0.0,
        ttfs_p99_latency: float = 1.0,
        **kwargs: Any,
    ) -> None:
        language = (config or PipecatConfig()).language
        kwargs.setdefault("settings", STTSettings(model="SenseVoiceSmall", language=language))
        super().__init__(
            engine, call_id=call_id, config=config, flow=flow, outlet=outlet,
            trailing_silence_secs=trailing_silence_secs, ttfs_p99_latency=ttfs_p99_latency,
            **kwargs,
        )  # fmt: skip
        self._padding_s = trailing_silence_secs
        self._session: CallSession | None = None
        self._heard = 0  # samples of input audio, at self.sample_rate
        self._ends: deque[float] = deque()  # call time of each queued segment's end

    @property
    def wants_wav_segments(self) -> bool:
        return False  # SenseVoice reads raw PCM16

    async def start(self, frame: StartFrame) -> None:
        await super().start(frame)
        flow = (self.flow or self.engine.flow).without_tts()
        self._session = flow.open(self.call_id, channels=1, source="pipecat")
        await asyncio.to_thread(self._session.start)

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        if isinstance(frame, VADUserStoppedSpeakingFrame) and self.is_usable:
            self._ends.append(self._heard / max(self.sample_rate, 1))
        await super().process_frame(frame, direction)

    async def process_audio_frame(
        self, frame: InputAudioRawFrame, direction: FrameDirection
    ) -> None:
        self._heard += frame.num_frames
        await super().process_audio_frame(frame, direction)

    async def run_stt(self, audio: bytes) -> AsyncGenerator[Frame | None, None]:
        """One segment: SenseVoice, the session (guard, policies), frames out."""
        assert self._session is not None
        clip = pcm16_mono(audio, self.sample_rate)
        clip = clip[: max(0, clip.size - round(self._padding_s * SAMPLE_RATE))]
        end = self._ends.popleft() if self._ends else self._heard / max(self.sample_rate, 1)
        await self.start_processing_metrics()
        utterance = await recognize_clip(
            self.engine, clip, call_id=self.call_id, speaker=self.config.speaker,
            start=max(0.0, end - clip.size / SAMPLE_RATE), language=self.config.language,
        )  # fmt: skip
        await self.stop_processing_metrics()
        events = await asyncio.to_thread(self._session.feed, utterance)
        for event in events:
            if isinstance(event, UtteranceEvent) and event.utterance.text:
                u = event.utterance
                yield TranscriptionFrame(u.text, self._user_id, time_now_iso8601(),
                                         pipecat_language(u.lang), result=u)  # fmt: skip
            await self._emit(event)

    async def stop(self, frame: EndFrame) -> None:
        """Queued segments first (Pipecat's stop), then the call's end: ``last:`` windows
        decide and the result goes out before the ``EndFrame``."""
        await super().stop(frame)
        await self._close()

    async def _close(self) -> None:
        session, self._session = self._session, None
        if session is None:
            return
        duration = round(self._heard / max(self.sample_rate, 1), 3)
        events: Sequence[CallEvent] = await asyncio.to_thread(session.close, duration)
        for event in events:
            await self._emit(event)
