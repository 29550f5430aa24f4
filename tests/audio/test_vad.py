"""VAD engines on real audio: where segments fall, and which ones are marked speech."""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from callsense.core.errors import ConfigError
from callsense.pipeline.audio import decode, resample
from callsense.pipeline.model import Segment
from callsense.pipeline.segmentation import ChannelAudio
from callsense.pipeline.speech_scoring import SpeechScorer
from callsense.pipeline.vad import VADS, FsmnVad, SileroVad, VadConfig, build_vad
from tests.audio.conftest import BuiltCall
from tests.conftest import FSMN_VAD_DIR, TESTDATA


def _inside(segs: list[Segment], lo: float, hi: float, slack: float = 0.35) -> bool:
    return all(lo - slack <= s.start and s.end <= hi + slack for s in segs)


@pytest.mark.parametrize("engine", ["fsmn_vad", "silero_vad"])
def test_each_channel_gets_segments_where_its_speaker_talks(
    engine: str, request: pytest.FixtureRequest, mulaw_call: BuiltCall
) -> None:
    vad = request.getfixturevalue(engine)
    audio = decode(mulaw_call.path)
    customer = vad.segments(audio.channels[0], channel=0)
    agent = vad.segments(audio.channels[1], channel=1)
    assert customer and agent
    assert {s.channel for s in customer} == {0} and {s.channel for s in agent} == {1}
    assert _inside(customer, *mulaw_call.customer)
    assert _inside(agent, *mulaw_call.agent)
    for segs in (customer, agent):
        assert all(s.source == "speech" and s.speech_prob is not None for s in segs)
        assert [s.start for s in segs] == sorted(s.start for s in segs)
    # they cover most of each prompt
    spoken = mulaw_call.customer[1] - mulaw_call.customer[0]
    assert sum(s.duration for s in customer) > 0.7 * spoken


def test_fsmn_accepts_8k_input_and_resamples_it(fsmn_vad: FsmnVad) -> None:
    at16 = decode(TESTDATA / "speechbrain_spk1_snt1.wav").channels[0]
    at8 = resample(at16, 16000, 8000)
    a, b = fsmn_vad.segments(at16), fsmn_vad.segments(at8, 8000)
    assert len(a) == len(b) == 1
    assert a[0].start == pytest.approx(b[0].start, abs=0.1)
    assert a[0].end == pytest.approx(b[0].end, abs=0.1)


def test_fsmn_finds_nothing_in_silence_and_marks_a_tone_as_sound(fsmn_vad: FsmnVad) -> None:
    assert fsmn_vad.segments(np.zeros(48000, dtype=np.float32)) == []
    assert fsmn_vad.segments(np.zeros(10, dtype=np.float32)) == []
    t = np.arange(48000) / 16000
    tone = 0.3 * np.sin(2 * math.pi * 440 * t)
    clip = np.concatenate([np.zeros(16000), tone, np.zeros(16000)]).astype(np.float32)
    segs = fsmn_vad.segments(clip)
    assert len(segs) == 1
    assert segs[0].start == pytest.approx(1.0, abs=0.35) and segs[0].end > 3.8
    assert segs[0].source == "sound" and segs[0].speech_prob < 0.1


def test_silero_misses_the_tone_fsmn_passes(fsmn_vad: FsmnVad, silero_vad: SileroVad) -> None:
    t = np.arange(48000) / 16000
    clip = np.concatenate([np.zeros(16000), 0.3 * np.sin(2 * math.pi * 440 * t)])
    clip = clip.astype(np.float32)
    assert fsmn_vad.segments(clip) and silero_vad.segments(clip) == []


def test_fsmn_max_single_segment_cuts_long_speech() -> None:
    call = decode(TESTDATA / "aws-lca_Auto_Repairs_49_stereo_first40s.wav").channels[0]
    vad = FsmnVad(VadConfig(model=str(FSMN_VAD_DIR), max_single_segment_s=5))
    segs = vad.segments(call)
    assert max(s.duration for s in segs) <= 5.05
    assert sum(s.duration for s in segs) > 25  # still covers the customer's ~27 s of talk


def test_missing_local_model_dir_fails_fast_with_the_field(tmp_path: Path) -> None:
    started = time.monotonic()
    with pytest.raises(ConfigError, match=r"vad\.model: .*not an FSMN-VAD model directory"):
        FsmnVad(VadConfig(model=str(tmp_path / "no-such-model")))
    with pytest.raises(ConfigError, match=r"no config\.yaml"):
        FsmnVad(VadConfig(model=str(tmp_path)))  # exists, but empty
    assert time.monotonic() - started < 2.0  # no hub retries


def test_registry_and_config() -> None:
    assert {"fsmn": FsmnVad, "silero": SileroVad} == VADS
    assert VadConfig().engine == "fsmn" and VadConfig().model == "fsmn-vad"
    assert FsmnVad.capabilities.passes_sounds and not SileroVad.capabilities.passes_sounds
    assert isinstance(build_vad(VadConfig(engine="silero")), SileroVad)
    with pytest.raises(ValidationError, match="extra"):
        VadConfig.model_validate({"engine": "fsmn", "treshold": 0.5})
    with pytest.raises(ValidationError):
        VadConfig(engine="webrtc")  # type: ignore[arg-type]


def test_vad_takes_one_channel(fsmn_vad: FsmnVad) -> None:
    with pytest.raises(ValueError, match="one channel"):
        fsmn_vad.segments(np.zeros((2, 16000), dtype=np.float32))


def test_scorer_weights_the_loud_part_not_the_silence_around_it() -> None:
    """FSMN keeps silence around speech; that silence must not pull speech_prob down."""
    speech = decode(TESTDATA / "speechbrain_spk1_snt3.wav").channels[0]
    padded = np.concatenate([np.zeros(32000, np.float32), speech, np.zeros(32000, np.float32)])
    whole = Segment(channel=0, start=0.0, end=padded.size / 16000)
    scorer = SpeechScorer(threshold=0.5)
    [marked] = scorer.mark([whole], ChannelAudio(padded))
    probs = scorer.frame_probs(padded)
    assert float(np.mean(probs)) < 0.5  # a plain mean would call it a sound
    assert marked.source == "speech" and marked.speech_prob > 0.8
    strict = SpeechScorer(threshold=0.99).mark([whole], ChannelAudio(padded))[0]
    assert strict.source == "sound" and strict.speech_prob == marked.speech_prob


def test_fsmn_keeps_funasr_output_off_stdout(
    fsmn_vad: FsmnVad, capfd: pytest.CaptureFixture[str]
) -> None:
    """The CLI's stdout carries JSONL: funasr's version banner and progress must not land there."""
    capfd.readouterr()
    vad = FsmnVad(VadConfig(model=str(FSMN_VAD_DIR)))  # AutoModel() prints its version
    vad.segments(decode(TESTDATA / "speechbrain_spk1_snt1.wav").channels[0])
    assert capfd.readouterr().out == ""


def test_onnx_frame_scoring_gives_silero_wrapper_numbers() -> None:
    """The scorer runs silero's ONNX graph itself (no shared state, so threads can share
    it); every frame's probability must equal silero's own ``audio_forward``."""
    import torch

    from callsense.pipeline.speech_scoring import silero_model

    model = silero_model()
    samples = resample(decode(TESTDATA / "speechbrain_spk1_snt3.wav").channels[0], 16000, 16000)
    silence = np.zeros(16000, np.float32)
    samples = np.concatenate([silence, samples, silence[:16300]])  # not a whole frame
    with torch.inference_mode():
        expected = model.audio_forward(torch.from_numpy(samples.copy()), 16000)[0].numpy()
    got = SpeechScorer().frame_probs(samples)
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, atol=1e-6)
    assert got.max() > 0.9 and got.min() < 0.1  # speech and silence, not a constant


def test_channels_in_parallel_give_the_sequential_segments(
    fsmn_vad: FsmnVad, mulaw_call: BuiltCall
) -> None:
    """The transcriber runs a stereo call's channels in threads (and silero alongside
    FSMN); the segments and marks must be exactly what one channel at a time gives."""
    from callsense.pipeline.config import load_config
    from callsense.pipeline.transcribe import Transcriber

    audio = decode(mulaw_call.path)
    cfg = load_config(None, vad_model=str(FSMN_VAD_DIR), environ={})
    sequential = []
    for index, samples in enumerate(audio.channels):
        sequential += fsmn_vad.segments(
            samples, audio.sample_rate, channel=index, segmentation=cfg.segmentation
        )
    sequential.sort(key=lambda s: (s.start, s.channel))
    transcriber = Transcriber(cfg, fsmn_vad, recognizer=None)  # type: ignore[arg-type]
    for _ in range(3):
        assert transcriber.segments(audio) == sequential
    assert {s.channel for s in sequential} == {0, 1}
    assert all(s.speech_prob is not None for s in sequential)
