"""callsense as a LiveKit Agents STT, through LiveKit's own ``StreamAdapter`` and its local
silero VAD (``livekit.agents.inference.VAD``, bundled with the wheel): the angry call's
customer track as ``rtc.AudioFrame``s, the keyed test model, the default policy."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import numpy as np
import pytest
from livekit import rtc
from livekit.agents import stt
from livekit.agents.inference import VAD

from callsense.connectors.integrations.livekit import CallsensePolicies, CallsenseSTT
from callsense.pipeline.audio import resample
from callsense.pipeline.live import LiveEngine
from callsense.rules.model import Decision

pytestmark = [pytest.mark.model, pytest.mark.slow]

FRAME_S = 0.02


def audio_frames(pcm: bytes, rate: int) -> list[rtc.AudioFrame]:
    step = 2 * round(rate * FRAME_S)
    return [
        rtc.AudioFrame(pcm[i : i + step], rate, 1, len(pcm[i : i + step]) // 2)
        for i in range(0, len(pcm) - step + 1, step)
    ]


async def played(frames: list[rtc.AudioFrame], speed: float) -> AsyncIterator[rtc.AudioFrame]:
    """Frames as a room delivers them, ``speed`` x real time."""
    for frame in frames:
        yield frame
        await asyncio.sleep(FRAME_S / speed)


async def transcribe(
    model: stt.STT,
    frames: list[rtc.AudioFrame],
    policies: CallsensePolicies | None = None,
    speed: float = 4.0,
) -> list[stt.SpeechEvent]:
    """What an agent's STT node does with a non-streaming STT: StreamAdapter + VAD."""
    adapter = stt.StreamAdapter(stt=model, vad=VAD())
    events: list[stt.SpeechEvent] = []
    async with adapter.stream() as stream:
        audio = (
            played(frames, speed) if policies is None else policies.listen(played(frames, speed))
        )

        async def push() -> None:
            async for frame in audio:
                stream.push_frame(frame)
            stream.end_input()

        pusher = asyncio.create_task(push())
        async for event in stream:
            events.append(event)
            if policies is not None:
                await policies.feed(event)
        await pusher
    return events


def finals(events: list[stt.SpeechEvent]) -> list[stt.SpeechData]:
    return [e.alternatives[0] for e in events if e.type == stt.SpeechEventType.FINAL_TRANSCRIPT]


def test_stt_through_stream_adapter_carries_language_and_tags(
    engine: LiveEngine, customer_pcm16k: bytes
) -> None:
    events = asyncio.run(transcribe(CallsenseSTT(engine), audio_frames(customer_pcm16k, 16000)))
    heard = finals(events)
    assert len(heard) == 3
    for data in heard:
        assert data.language == "en" and data.text == "Yes."
        md = data.metadata
        assert md is not None
        assert md["emotion"] == "ANGRY" and md["event"] == "Speech" and md["lang"] == "en"
        assert md["speaker"] == "customer" and md["source"] == "speech"
        assert md["confidence"]["emotion"] is not None and md["confidence"]["lang"] is not None
        assert data.confidence == md["confidence"]["lang"] and data.end_time > data.start_time


def test_agent_track_keeps_no_emotion(engine: LiveEngine, customer_pcm16k: bytes) -> None:
    """The flow's compliance gate: the model says ANGRY, an agent's metadata says nothing."""
    frames = audio_frames(customer_pcm16k[: 16000 * 2 * 8], 16000)
    segment = rtc.combine_audio_frames(frames[170:380])  # the first customer turn
    event = asyncio.run(CallsenseSTT(engine, speaker="agent").recognize(segment))
    md = event.alternatives[0].metadata
    assert md is not None and md["speaker"] == "agent"
    assert md["emotion"] is None and "ANGRY" in md["raw"]


def test_policies_on_final_transcripts_call_back_the_escalation(
    engine: LiveEngine, customer_pcm16k: bytes
) -> None:
    """24 kHz room audio; the helper runs the default policy on each final transcript and
    calls back once, on the third angry one."""
    pcm = np.frombuffer(customer_pcm16k, dtype="<i2").astype(np.float32) / 32768
    pcm24 = np.clip(np.round(resample(pcm, 16000, 24000) * 32768), -32768, 32767)
    frames = audio_frames(pcm24.astype("<i2").tobytes(), 24000)
    called: list[tuple[Decision, int]] = []
    transcripts: list[int] = []

    async def main() -> CallsensePolicies:
        policies = CallsensePolicies(engine, "livekit-angry")

        async def on_decision(decision: Decision) -> None:
            called.append((decision, len(policies.session.utterances)))

        policies.on_decision = on_decision
        events = await transcribe(CallsenseSTT(engine), frames, policies)
        transcripts.append(len(finals(events)))
        await policies.close()
        return policies

    policies = asyncio.run(main())
    assert transcripts == [3]
    assert [(d.rule, d.action, n) for d, n in called] == [("angry-streak", "escalate", 3)]
    result = policies.result
    assert result is not None and list(result.decisions) == [called[0][0]]
    utterances = result.transcript.utterances
    assert [u.emotion for u in utterances] == ["ANGRY"] * 3
    assert all(u.call_id == "livekit-angry" for u in utterances)
    ends = [u.end for u in utterances]
    assert ends == sorted(ends) and ends[-1] <= policies.clock.position + 1e-6
    assert policies.clock.position == pytest.approx(len(frames) * FRAME_S)
