"""`vad.speech_scoring`: the default scores the whole channel, `segments` each segment alone;
clear cases mark the same either way."""

from __future__ import annotations

import pytest

from callsense.pipeline.audio import decode
from callsense.pipeline.vad import FsmnVad, VadConfig
from tests.conftest import FSMN_VAD_DIR, TESTDATA

CLEAR = {
    "ravdess_03-01-05-01-01-01-01.wav": "speech",
    "speechbrain_spk1_snt3.wav": "speech",
    "sherpa-audiotag_6_baby-cry.wav": "sound",
    "sherpa-audiotag_12_dog-bark.wav": "sound",
    "librosa_sorohanro_-_solo-trumpet-06.ogg": "sound",
}


@pytest.fixture(scope="module")
def segment_scoring_vad() -> FsmnVad:
    return FsmnVad(VadConfig(model=str(FSMN_VAD_DIR), speech_scoring="segments"))


@pytest.fixture(scope="module")
def channel_scoring_vad() -> FsmnVad:
    return FsmnVad(VadConfig(model=str(FSMN_VAD_DIR), speech_scoring="channel"))


def test_whole_channel_scoring_is_the_default() -> None:
    assert VadConfig().speech_scoring == "channel"


@pytest.mark.parametrize(("name", "expected"), sorted(CLEAR.items()))
def test_segment_scoring_marks_clear_cases_like_channel_scoring(
    name: str, expected: str, segment_scoring_vad: FsmnVad, channel_scoring_vad: FsmnVad
) -> None:
    samples = decode(TESTDATA / name).channels[0]
    per_segment = segment_scoring_vad.segments(samples)
    whole = channel_scoring_vad.segments(samples)
    assert per_segment and [(s.start, s.end) for s in per_segment] == [
        (s.start, s.end) for s in whole
    ]
    assert {s.source for s in per_segment} == {expected}
    assert all(s.speech_prob is not None for s in per_segment)
