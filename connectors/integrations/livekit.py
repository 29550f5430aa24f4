"""callsense inside a LiveKit agent (``pip install 'callsense[livekit]'``).

``CallsenseSTT`` is a LiveKit ``stt.STT``: SenseVoice on the segments a VAD cuts (it does
not stream: ``AgentSession`` wraps it in ``stt.StreamAdapter`` with the agent's VAD, or
wrap it yourself). Each ``SpeechEvent`` carries the language SenseVoice *detected*, the
text, and in ``SpeechData.metadata`` the utterance as callsense's wire record (emotion,
event, their confidences, source, speaker: ``core.wire``'s one shape), after the flow's
privacy guard (no emotion on agents unless the compliance settings allow it; PII redacted).
Segments are recognized by the live calls' shared recognizer worker.

``CallsensePolicies`` runs one call's policies on the agent's final transcripts, through the
same ``CallSession`` every callsense road drives, and calls back on each decision (start a
warm transfer, tell the LLM). In an ``Agent``::

    async def stt_node(self, audio, model_settings):
        async for event in self.policies.stt_node(self, audio, model_settings):
            yield event

LiveKit's ``StreamAdapter`` drops transcripts without text, so sound-only segments (a
laugh, a cough) never reach the policies on this road; ``CallsenseProcessor``'s Pipecat
road and the service's live routes keep them.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
import uuid
from collections import deque
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable
from dataclasses import replace
from typing import Any

import numpy as np
from livekit import rtc
from livekit.agents import stt
from livekit.agents.language import LanguageCode
from livekit.agents.types import DEFAULT_API_CONNECT_OPTIONS, NOT_GIVEN, APIConnectOptions
from livekit.agents.utils import AudioBuffer
from livekit.agents.voice import Agent, ModelSettings

from callsense.connectors.integrations.common import DecisionOutlet, pcm16_mono, recognize_clip
from callsense.pipeline.events import DecisionEvent
from callsense.pipeline.live import LiveEngine
from callsense.pipeline.model import Speaker, Utterance
from callsense.pipeline.recognizer import LANGUAGES
from callsense.pipeline.records import record_from_utterance, utterance_from_record
from callsense.pipeline.session import CallFlow
from callsense.pipeline.summary import CallResult
from callsense.rules.model import Decision

__all__ = ["AudioClock", "CallsensePolicies", "CallsenseSTT", "speech_data"]

log = logging.getLogger(__name__)

OnDecision = Callable[[Decision], Awaitable[None] | None]


def speech_data(utterance: Utterance) -> stt.SpeechData:
    """LiveKit's view of one guarded utterance: detected language, text, times within the
    segment, the language confidence, and the wire record as ``metadata``."""
    lang = utterance.lang if utterance.lang and utterance.lang != "nospeech" else "und"
    return stt.SpeechData(
        language=LanguageCode(lang),
        text=utterance.text,
        start_time=utterance.start,
        end_time=utterance.end,
        confidence=utterance.confidence.lang or 0.0,
        metadata=record_from_utterance(utterance),
    )


class CallsenseSTT(stt.STT):
    """SenseVoice through callsense: see the module doc. One per agent session (its
    ``speaker`` is that session's caller or agent track), all sharing one ``engine``."""

    def __init__(
        self,
        engine: LiveEngine,
        *,
        speaker: Speaker = "customer",
        language: str | None = None,
        call_id: str = "livekit",
    ) -> None:
        super().__init__(capabilities=stt.STTCapabilities(streaming=False, interim_results=False))
        if language is not None and language not in LANGUAGES:
            raise ValueError(f"language must be one of {', '.join(LANGUAGES)}")
        self.engine = engine
        self.speaker = speaker
        self.language = language
        self.call_id = call_id

    @property
    def model(self) -> str:
        return "SenseVoiceSmall"

    @property
    def provider(self) -> str:
        return "callsense"

    async def _recognize_impl(
        self,
        buffer: AudioBuffer,
        *,
        language: Any = NOT_GIVEN,
        conn_options: APIConnectOptions = DEFAULT_API_CONNECT_OPTIONS,
    ) -> stt.SpeechEvent:
        frame = rtc.combine_audio_frames(buffer) if isinstance(buffer, list) else buffer
        pcm = np.frombuffer(frame.data, dtype=np.int16)
        if frame.num_channels > 1:  # one voice per track: mix down what a client sent
            pcm = pcm.reshape(-1, frame.num_channels).mean(axis=1).astype(np.int16)
        clip = pcm16_mono(pcm.tobytes(), frame.sample_rate)
        utterance = await recognize_clip(
            self.engine, clip, call_id=self.call_id, speaker=self.speaker, start=0.0,
            language=self._language(language),
        )  # fmt: skip
        return stt.SpeechEvent(
            type=stt.SpeechEventType.FINAL_TRANSCRIPT,
            request_id=uuid.uuid4().hex,
            alternatives=[speech_data(utterance)],
        )

    def _language(self, asked: Any) -> str | None:
        """The session's language if SenseVoice knows it, else this STT's (None: the
        config's, ``auto`` by default: detected per segment)."""
        if isinstance(asked, str) and LanguageCode(asked).language in LANGUAGES:
            return LanguageCode(asked).language
        return self.language


class AudioClock:
    """Audio seconds heard so far, and when each frame was heard: places a transcript on the
    call's timeline from the wall time LiveKit gives its end (``speech_end_time``)."""

    def __init__(self, keep: int = 6000) -> None:
        self.position = 0.0
        self._marks: deque[tuple[float, float]] = deque(maxlen=keep)  # (wall, position)

    def heard(self, frame: rtc.AudioFrame) -> None:
        self.position += frame.samples_per_channel / frame.sample_rate
        self._marks.append((time.time(), self.position))

    def at(self, wall: float | None) -> float:
        """The position when the frame heard at or before ``wall`` ended (None: now)."""
        if wall is None:
            return self.position
        for when, position in reversed(self._marks):
            if when <= wall:
                return position
        return self._marks[0][1] if self._marks else self.position


class CallsensePolicies:
    """One call's policies on a LiveKit agent's final transcripts; see the module doc.

    ``on_decision`` is called (awaited if it is a coroutine) for each decision; ``outlet``
    also receives them (``OutboxOutlet``: webhooks and routing targets)."""

    def __init__(
        self,
        engine: LiveEngine,
        call_id: str,
        *,
        on_decision: OnDecision | None = None,
        outlet: DecisionOutlet | None = None,
        flow: CallFlow | None = None,
    ) -> None:
        self.call_id = call_id
        self.on_decision = on_decision
        self.outlet = outlet
        self.session = (
            (flow or engine.flow).without_tts().open(call_id, channels=1, source="livekit")
        )
        self.clock = AudioClock()
        self.decisions: list[Decision] = []
        self.result: CallResult | None = None
        self._started = False
        self._last_end = 0.0

    async def start(self) -> None:
        if not self._started:
            self._started = True
            await asyncio.to_thread(self.session.start)

    async def listen(self, audio: AsyncIterable[rtc.AudioFrame]) -> AsyncIterator[rtc.AudioFrame]:
        """The agent's input audio, passed on as it is; the clock counts it."""
        async for frame in audio:
            self.clock.heard(frame)
            yield frame

    async def feed(self, event: stt.SpeechEvent) -> list[Decision]:
        """A final transcript of ``CallsenseSTT`` into the session; other events (and other
        STTs' transcripts, which carry no callsense record) are ignored."""
        if event.type != stt.SpeechEventType.FINAL_TRANSCRIPT or not event.alternatives:
            return []
        record = event.alternatives[0].metadata
        if not record or "raw" not in record:
            return []
        await self.start()
        heard = utterance_from_record(record)
        end = max(self.clock.at(event.speech_end_time), self._last_end + heard.duration)
        self._last_end = end
        placed = replace(heard, call_id=self.call_id, start=round(end - heard.duration, 3),
                         end=round(end, 3))  # fmt: skip
        events = await asyncio.to_thread(self.session.feed, placed)
        return await self._decided([e.decision for e in events if isinstance(e, DecisionEvent)])

    async def _decided(self, decisions: list[Decision]) -> list[Decision]:
        for d in decisions:
            log.info("livekit call %s: decision %s (%s) at %.2f", self.call_id, d.rule, d.action,
                     d.at)  # fmt: skip
            self.decisions.append(d)
            try:
                if self.outlet is not None:
                    await self.outlet(d)
                if self.on_decision is not None:
                    done = self.on_decision(d)
                    if inspect.isawaitable(done):
                        await done
            except Exception as exc:  # a failing callback must not end the call
                log.warning("livekit call %s: decision callback failed: %s", self.call_id,
                            type(exc).__name__)  # fmt: skip
        return decisions

    async def stt_node(
        self, agent: Agent, audio: AsyncIterable[rtc.AudioFrame], model_settings: ModelSettings
    ) -> AsyncIterator[stt.SpeechEvent | str]:
        """``Agent.default.stt_node`` with the policies on each final transcript."""
        await self.start()
        async for event in Agent.default.stt_node(agent, self.listen(audio), model_settings):
            if isinstance(event, stt.SpeechEvent):
                await self.feed(event)
            yield event

    async def close(self) -> CallResult:
        """The call ended: ``last:`` windows decide (their decisions are called back too),
        then the result with its summary and audit block."""
        if self.result is None:
            await self.start()
            events = await asyncio.to_thread(self.session.end, round(self.clock.position, 3))
            await self._decided([e.decision for e in events if isinstance(e, DecisionEvent)])
            self.result = self.session.finish().result
        return self.result
