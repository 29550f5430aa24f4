"""callsense in a real Pipecat pipeline (``WorkerRunner`` + ``PipelineWorker``, 1.14's names
for ``PipelineRunner``/``PipelineTask``): the angry call's customer track played as input
audio frames, the keyed test model, the default policy."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from pipecat.audio.vad.silero import SileroVADAnalyzer
from pipecat.frames.frames import (
    EndFrame,
    InputAudioRawFrame,
    LLMMessagesAppendFrame,
    TranscriptionFrame,
)
from pipecat.processors.audio.vad_processor import VADProcessor
from pipecat.transcriptions.language import Language
from pydantic import ValidationError

from callsense.connectors.integrations.pipecat import (
    CallsenseDecisionFrame,
    CallsenseEndFrame,
    CallsenseProcessor,
    CallsenseSTTService,
    CallsenseUtteranceFrame,
    ContextReaction,
    PipecatConfig,
)
from callsense.pipeline.audio import resample
from callsense.pipeline.live import LiveEngine
from callsense.pipeline.model import Utterance
from callsense.rules.model import Decision
from tests.integrations.pipecat_harness import Collector, RecordingSource, run_pipeline

pytestmark = [pytest.mark.model, pytest.mark.slow]

REACT = PipecatConfig(reactions=(ContextReaction(message="caller is {emotion}: {reason}"),))


def test_processor_escalates_on_the_third_angry_utterance(
    engine: LiveEngine, customer_pcm16k: bytes
) -> None:
    source = RecordingSource(customer_pcm16k, 16000)  # 1x real time, as a transport delivers
    processor = CallsenseProcessor(engine, call_id="pipecat-angry", config=REACT)
    decided: list[Decision] = []

    async def outlet(decision: Decision) -> None:
        decided.append(decision)

    processor.outlet = outlet
    sink = Collector()
    asyncio.run(run_pipeline([source, processor, sink]))

    # every frame the transport produced reached the end, unchanged and in order
    audio = sink.of(InputAudioRawFrame)
    assert len(audio) == len(source.sent)
    assert all(a is b for a, (_, b) in zip(audio, source.sent, strict=True))

    utterances = sink.of(CallsenseUtteranceFrame)
    assert len(utterances) == 3
    for frame in utterances:
        assert isinstance(frame, CallsenseUtteranceFrame)
        assert frame.language is Language.EN and frame.emotion == "ANGRY"
        assert frame.event == "Speech" and frame.utterance.speaker == "customer"
        assert frame.confidence.emotion is not None and frame.end > frame.start

    decisions = sink.of(CallsenseDecisionFrame)
    assert [(d.rule, d.action) for d in decisions] == [("angry-streak", "escalate")]
    decision = decisions[0]
    assert isinstance(decision, CallsenseDecisionFrame)
    third = utterances[2]
    assert sink.index(third) < sink.index(decision)
    assert [e.seq for e in decision.evidence] == [0, 1, 2]
    assert decided == [decision.decision]

    # the configured reaction: the bot's context learns why, never what was said
    appended = sink.of(LLMMessagesAppendFrame)
    assert len(appended) == 1 and sink.index(appended[0]) > sink.index(decision)
    message = appended[0].messages[0]
    expected = "caller is angry: three consecutive angry utterances"
    assert message == {"role": "system", "content": expected}

    # the call's result goes out before the pipeline's end
    ends = sink.of(CallsenseEndFrame)
    assert len(ends) == 1 and sink.index(ends[0]) < sink.index(sink.of(EndFrame)[0])
    assert processor.result is not None and len(processor.result.decisions) == 1

    assert isinstance(third, CallsenseUtteranceFrame)
    last_frame = audio[source.frame_at(third.end)]
    latency = sink.arrival(decision) - sink.arrival(last_frame)
    close = sink.arrival(decision) - sink.arrival(audio[source.frame_at(third.closed_at)])
    print(
        f"\npipecat: decision {latency * 1000:.0f} ms after the third angry utterance's last "
        f"audio frame (end {third.end:.2f} s; {close * 1000:.0f} ms after the frame where "
        f"VAD closed it at {third.closed_at:.2f} s)"
    )


def test_any_rate_and_only_the_configured_user(engine: LiveEngine, customer_pcm16k: bytes) -> None:
    """48 kHz WebRTC audio is resampled to the call's 16 kHz frame by frame; another user's
    audio passes through untouched and unheard; an agent's track keeps no emotion."""
    pcm = np.frombuffer(customer_pcm16k, dtype="<i2").astype(np.float32) / 32768
    pcm48 = np.clip(np.round(resample(pcm, 16000, 48000) * 32768), -32768, 32767)
    data = pcm48.astype("<i2").tobytes()
    agent = PipecatConfig(speaker="agent", user_id="caller-1")
    heard = CallsenseProcessor(engine, call_id="pipecat-48k", config=agent)
    other = CallsenseProcessor(engine, call_id="pipecat-other", config=PipecatConfig(user_id="x"))
    source = RecordingSource(data, 48000, speed=4.0, user_id="caller-1")
    sink = Collector()
    asyncio.run(run_pipeline([source, heard, other, sink], sample_rate=48000))

    assert len(sink.of(InputAudioRawFrame)) == len(source.sent)
    utterances = [
        f for f in sink.of(CallsenseUtteranceFrame) if isinstance(f, CallsenseUtteranceFrame)
    ]
    assert len(utterances) == 3
    assert {u.utterance.call_id for u in utterances} == {"pipecat-48k"}
    # the session's compliance gate: no emotion on agents (the model still said ANGRY)
    assert all(u.emotion is None and "ANGRY" in u.utterance.raw for u in utterances)
    assert all(u.language is Language.EN for u in utterances)
    assert not sink.of(CallsenseDecisionFrame)  # the angry streak needs a customer
    assert other.call is None and other.result is None


def test_stt_service_reports_the_detected_language_and_tags(
    engine: LiveEngine, customer_pcm16k: bytes
) -> None:
    """Pipecat's own VAD cuts the segments; callsense's STT gets raw PCM and says what
    SenseVoice heard, and the session's policies decide on it."""
    source = RecordingSource(customer_pcm16k, 16000, speed=4.0)
    stt = CallsenseSTTService(engine, call_id="pipecat-stt")
    sink = Collector()
    vad = VADProcessor(vad_analyzer=SileroVADAnalyzer())
    asyncio.run(run_pipeline([source, vad, stt, sink]))

    transcripts = sink.of(TranscriptionFrame)
    assert len(transcripts) >= 3
    for frame in transcripts:
        assert isinstance(frame, TranscriptionFrame)
        assert frame.language is Language.EN and frame.text == "Yes."
        assert isinstance(frame.result, Utterance) and frame.finalized
        assert frame.result.emotion == "ANGRY" and frame.result.event == "Speech"
        assert frame.result.lang == "en" and frame.result.confidence.lang is not None
    starts = [t.result.start for t in transcripts if isinstance(t, TranscriptionFrame)]
    assert starts == sorted(starts)
    decisions = sink.of(CallsenseDecisionFrame)
    assert [d.rule for d in decisions if isinstance(d, CallsenseDecisionFrame)] == ["angry-streak"]
    assert stt.result is not None and stt.result.summary["utterances"] == len(transcripts)


def test_reaction_messages_name_only_decision_fields() -> None:
    with pytest.raises(ValidationError, match=r"unknown field \{text\}"):
        ContextReaction(message="the caller said {text}")
    with pytest.raises(ValidationError):
        PipecatConfig.model_validate({"reactions": [{"kind": "page"}]})
    cfg = PipecatConfig.model_validate({"reactions": [{"kind": "handoff", "say": "One moment."}]})
    assert cfg.reactions[0].kind == "handoff"
