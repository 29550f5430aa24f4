"""pipeline.live without the network: segmentation against the batch pipeline, the
length rules, the shared micro-batching recognizer, and a call's events in order."""

from __future__ import annotations

import asyncio
import itertools
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from callsense.pipeline.audio import Upsampler, decode
from callsense.pipeline.config import CallsenseConfig, load_config
from callsense.pipeline.events import DecisionEvent, EndEvent, UtteranceEvent
from callsense.pipeline.live import LiveEngine, StreamFormat
from callsense.pipeline.live_channel import ChannelSegmenter
from callsense.pipeline.recognizer import Recognition, Recognizer, RecognizerCapabilities
from callsense.pipeline.recognizer_worker import RecognizerWorker
from callsense.pipeline.segmentation import SegmentationConfig
from callsense.pipeline.transcribe import build_transcriber
from callsense.pipeline.vad import StreamingVad

pytestmark = pytest.mark.model


@pytest.fixture(scope="module")
def cfg(keyed_model_dir: Path) -> CallsenseConfig:
    return load_config(None, model=str(keyed_model_dir), environ={})


@pytest.fixture(scope="module")
def vad(cfg: CallsenseConfig) -> StreamingVad:
    return StreamingVad(cfg.vad)


def segment_stream(
    samples: np.ndarray, vad: StreamingVad, cfg: CallsenseConfig, channel: int = 0
) -> list:
    seg = ChannelSegmenter(channel, vad, cfg)
    out = []
    for i in range(0, samples.size, 320):  # 20 ms frames
        seg.add(samples[i : i + 320].copy())
        if seg.ready:
            out += seg.step()
    return out + seg.step(final=True)


def run_call(engine: LiveEngine, call_id: str, fmt: StreamFormat, data: bytes, chunk: int) -> list:
    """Feed ``data`` in ``chunk``-byte messages, close, and return every event; closes the
    engine."""

    async def main() -> list:
        call = engine.open(call_id, fmt)
        await call.start()
        events: list = []

        async def read() -> None:
            async for ev in call.events():
                events.append(ev)

        reader = asyncio.create_task(read())
        for i in range(0, len(data), chunk):
            await call.feed(data[i : i + chunk])
        await call.close()
        await reader
        return events

    try:
        return asyncio.run(main())
    finally:
        engine.close()


def test_live_segments_match_the_batch_pipeline(
    cfg: CallsenseConfig, vad: StreamingVad, angry_call: tuple[Path, list]
) -> None:
    path, _ = angry_call
    audio = decode(path)
    batch = build_transcriber(cfg).segments(audio)
    live = [c.segment for ch in (0, 1) for c in segment_stream(audio.channels[ch], vad, cfg, ch)]
    live.sort(key=lambda s: (s.start, s.channel))
    assert [s.channel for s in live] == [s.channel for s in batch]
    for a, b in zip(live, batch, strict=True):
        assert a.start == pytest.approx(b.start, abs=0.05)
        assert a.end == pytest.approx(b.end, abs=0.1)


def test_long_speech_is_cut_and_blips_dropped(
    cfg: CallsenseConfig, vad: StreamingVad, angry_call: tuple[Path, list]
) -> None:
    path, timeline = angry_call
    x = decode(path).channels[0]
    # the three customer turns back to back, no pauses: one long stretch of speech
    turns = [t for t in timeline if t.speaker == "customer"]
    speech = np.concatenate(
        [x[int(t.start * 16000) + 8000 : int(t.end * 16000) - 4000] for t in turns]
    )
    rules = SegmentationConfig(min_utterance_s=0.3, max_utterance_s=4.0, split_search_s=2.0)
    short = cfg.model_copy(update={"segmentation": rules})
    silence = np.zeros(16000, np.float32)
    blip = np.zeros(1600, np.float32)
    blip[:800] = x[int(turns[0].start * 16000) + 16000 :][:800]  # 50 ms of speech
    out = segment_stream(np.concatenate([silence, speech, silence, blip, silence]), vad, short)
    durations = [c.segment.end - c.segment.start for c in out]
    assert len(out) >= 3  # ~9 s of speech cut into pieces of at most 4 s (+ padding)
    assert max(durations) <= rules.max_utterance_s + rules.pad_s + 1e-6
    assert all(c.clip.size == round((c.segment.end - c.segment.start) * 16000) for c in out)
    assert out[-1].segment.end < 1.0 + speech.size / 16000 + 0.5  # the blip made nothing
    # pieces follow each other: each cut is the next piece's start
    for a, b in itertools.pairwise(out):
        assert b.segment.start >= a.segment.end - 1e-6


def test_upsampler_is_continuous_across_frames() -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal(8000).astype(np.float32) * 0.1
    whole = Upsampler()(x)
    up = Upsampler()
    pieces = np.concatenate([up(x[i : i + 160]) for i in range(0, x.size, 160)])
    np.testing.assert_allclose(pieces, whole, atol=1e-6)
    from callsense.pipeline.audio import resample

    ref = resample(x, 8000, 16000)
    n = min(ref.size, whole.size) - 200
    np.testing.assert_allclose(whole[100:n], ref[100:n], atol=1e-4)


def submit_at_once(
    worker: RecognizerWorker, clips: list[np.ndarray], done_order: list[int] | None = None
) -> list[str]:
    """One caller thread per clip, all submitting at the same moment (as concurrent calls
    do); the answers in clip order, and in ``done_order`` the order they came back."""
    futures: list = [None] * len(clips)
    barrier = threading.Barrier(len(clips))

    def caller(i: int) -> None:
        barrier.wait()
        futures[i] = worker.submit(clips[i], "auto")
        if done_order is not None:
            futures[i].add_done_callback(lambda _f, i=i: done_order.append(i))

    threads = [threading.Thread(target=caller, args=(i,)) for i in range(len(clips))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return [f.result(timeout=60).raw for f in futures]


def test_worker_batches_requests_from_many_callers(
    keyed_recognizer, angry_call: tuple[Path, list]
) -> None:
    path, timeline = angry_call
    x = decode(path).channels[0]
    clips = [
        x[int(t.start * 16000) : int(t.end * 16000)] for t in timeline if t.speaker == "customer"
    ]
    alone = [keyed_recognizer.recognize([c])[0].raw for c in clips]
    worker = RecognizerWorker(keyed_recognizer, max_batch=8, max_wait_s=0.2)
    try:
        results = submit_at_once(worker, clips)
    finally:
        worker.close()
    assert results == alone
    assert worker.stats.clips == len(clips) and worker.stats.batches < len(clips)


def test_call_events_come_in_order_and_end_with_the_summary(
    cfg: CallsenseConfig, keyed_recognizer, vad: StreamingVad, angry_call: tuple[Path, list]
) -> None:
    from callsense.pipeline.analyze import build_flow

    path, timeline = angry_call
    audio = decode(path)
    pcm = (np.stack(audio.channels, axis=1) * 32768).round().clip(-32768, 32767)
    data = pcm.astype("<i2").tobytes()
    engine = LiveEngine(cfg, keyed_recognizer, build_flow(cfg, with_tts=False), vad=vad)

    # odd sizes: frames split across messages
    events = run_call(engine, "unit-call", StreamFormat(16000, 2), data, 1283)
    utterances = [e.utterance for e in events if isinstance(e, UtteranceEvent)]
    assert [u.speaker for u in utterances] == [t.speaker for t in timeline]
    assert [u.end for u in utterances] == sorted(u.end for u in utterances)
    assert isinstance(events[-1], EndEvent)
    result = events[-1].result
    assert result.summary["utterances"] == len(timeline)
    decisions = [e.decision for e in events if isinstance(e, DecisionEvent)]
    assert list(result.decisions) == decisions


def test_worker_without_batched_forward_answers_shortest_first(
    keyed_recognizer, angry_call: tuple[Path, list]
) -> None:
    path, timeline = angry_call
    x = decode(path).channels[0]
    clips = [x[int(t.start * 16000) : int(t.end * 16000)] for t in timeline]
    alone = [keyed_recognizer.recognize([c])[0].raw for c in clips]
    worker = RecognizerWorker(keyed_recognizer, max_batch=8, max_wait_s=0.2, batch_forward=False)
    done_order: list[int] = []
    try:
        results = submit_at_once(worker, clips, done_order)
    finally:
        worker.close()
    assert results == alone
    assert worker.stats.batches == len(clips)  # one forward pass per segment
    lengths = [clips[i].size for i in done_order]
    assert lengths == sorted(lengths)  # all arrived in one gather window: shortest first


def test_two_worker_threads_answer_every_request(keyed_recognizer, angry_call) -> None:
    path, timeline = angry_call
    x = decode(path).channels[0]
    clips = [x[int(t.start * 16000) : int(t.end * 16000)] for t in timeline]
    alone = [keyed_recognizer.recognize([c])[0].raw for c in clips]
    worker = RecognizerWorker(keyed_recognizer, max_batch=2, batch_forward=False, threads=2)
    try:
        futures = [worker.submit(c, "auto") for c in clips]
        assert [f.result(timeout=60).raw for f in futures] == alone
    finally:
        worker.close()
    assert worker.stats.clips == len(clips)


class _HearsACardNumber(Recognizer):
    """Says the same rich transcript for every segment and remembers the languages asked:
    stands in for what the model would hear when a caller reads out a card number."""

    capabilities = RecognizerCapabilities(name="hears-a-card", confidence=False)

    def __init__(self) -> None:
        self.languages: list[str | None] = []

    def recognize(
        self, clips: Sequence[np.ndarray], *, language: str | None = "auto"
    ) -> list[Recognition]:
        self.languages.append(language)
        text = "<|en|><|ANGRY|><|Speech|><|withitn|>My card is 4111 1111 1111 1111, charge it."
        return [Recognition(raw=text) for _ in clips]


def test_live_utterances_are_redacted_in_the_configs_language_with_the_tracks_role(
    cfg: CallsenseConfig, vad: StreamingVad, angry_call: tuple[Path, list]
) -> None:
    """A one-track stream (Twilio's outbound track alone) of the agent: the card number never
    leaves the engine, the config's language is asked for, and the speaker is the agent —
    so, by the compliance default, no emotion is kept."""
    from callsense.pipeline.analyze import build_flow

    path, _ = angry_call
    agent = decode(path).channels[1]
    data = (agent * 32768).round().clip(-32768, 32767).astype("<i2").tobytes()
    english = cfg.model_copy(
        update={"recognizer": cfg.recognizer.model_copy(update={"language": "en"})}
    )
    recognizer = _HearsACardNumber()
    engine = LiveEngine(english, recognizer, build_flow(english, with_tts=False), vad=vad)

    events = run_call(engine, "one-track", StreamFormat(16000, 1, roles={0: "agent"}), data, 640)
    utterances = [e.utterance for e in events if isinstance(e, UtteranceEvent)]
    assert utterances
    for u in utterances:
        assert "4111" not in u.text and "4111" not in u.raw
        assert u.text == "My card is [CARD], charge it."
        assert u.speaker == "agent" and u.emotion is None
    assert set(recognizer.languages) == {"en"}
    result = events[-1].result
    assert "4111" not in repr(result.transcript)
