"""Segmentation on synthetic energy envelopes, where the right cut point is known exactly."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from pydantic import ValidationError

from callsense.pipeline.audio import decode
from callsense.pipeline.model import Segment
from callsense.pipeline.segmentation import SegmentationConfig, lowest_energy_point, plan
from callsense.pipeline.vad import FsmnVad
from tests.conftest import TESTDATA

SR = 16000


def envelope(total_s: float, loud: list[tuple[float, float]], *, seed: int = 0) -> np.ndarray:
    """Noise at full level inside ``loud`` spans, a -60 dB floor elsewhere."""
    rng = np.random.default_rng(seed)
    x = 0.001 * rng.standard_normal(int(total_s * SR))
    for a, b in loud:
        x[int(a * SR) : int(b * SR)] = rng.standard_normal(int(b * SR) - int(a * SR)) * 0.3
    return x.astype(np.float32)


def seg(start: float, end: float, **kw: object) -> Segment:
    return Segment(channel=0, start=start, end=end, **kw)  # type: ignore[arg-type]


def test_lowest_energy_point_finds_the_pause() -> None:
    x = envelope(10, [(0, 4.0), (4.3, 10)])  # a 300 ms pause at 4.0-4.3 s
    assert lowest_energy_point(x, 2.0, 8.0, SR) == pytest.approx(4.15, abs=0.03)


def test_lowest_energy_point_prefers_the_quieter_of_two_dips() -> None:
    x = envelope(10, [(0, 10)])
    x[int(3 * SR) : int(3.2 * SR)] *= 0.1  # -20 dB dip
    x[int(6 * SR) : int(6.2 * SR)] *= 0.01  # -40 dB dip: the real pause
    assert 6.0 < lowest_energy_point(x, 1.0, 9.0, SR) < 6.2
    # outside the search window the deep dip does not count
    assert 3.0 < lowest_energy_point(x, 1.0, 5.0, SR) < 3.2


def test_lowest_energy_point_lands_mid_silence() -> None:
    x = np.ones(10 * SR, dtype=np.float32) * 0.2
    x[2 * SR : 5 * SR] = 0.0  # exact digital silence: every point in it ties
    assert lowest_energy_point(x, 0.0, 9.0, SR) == pytest.approx(3.5, abs=0.02)


def test_long_segment_is_split_at_pauses_and_every_piece_fits() -> None:
    # 40 s of talk with 250 ms pauses at 9, 13, 25 and 31 s
    pauses = [9.0, 13.0, 25.0, 31.0]
    loud, t = [], 0.0
    for p in pauses:
        loud.append((t, p))
        t = p + 0.25
    loud.append((t, 40.0))
    x = envelope(40, loud)
    cfg = SegmentationConfig(max_utterance_s=15, pad_s=0, split_search_s=5)
    out = plan([seg(0.0, 40.0, source="sound", speech_prob=0.2)], x, cfg)
    cuts = [s.end for s in out[:-1]]
    # the cut is searched in the 5 s before the limit: 10-15 s holds the pause at 13 s (the
    # one at 9 s is too early), then 23-28 s holds the one at 25 s; 25-40 s fits as it is.
    assert len(cuts) == 2
    assert 13.0 < cuts[0] < 13.25 and 25.0 < cuts[1] < 25.25
    assert all(s.duration <= 15 for s in out)
    assert out[0].start == 0.0 and out[-1].end == 40.0
    assert all(a.end == b.start for a, b in itertools.pairwise(out))  # no gaps
    assert all(s.speech_prob is None for s in out)  # speech/sound is marked after planning


def test_split_without_pause_still_respects_max_and_min() -> None:
    x = envelope(31, [(0, 31)])  # no pause at all
    cfg = SegmentationConfig(max_utterance_s=15, min_utterance_s=0.3, pad_s=0)
    out = plan([seg(0, 30.9)], x, cfg)
    assert all(0.3 <= s.duration <= 15 for s in out)
    assert sum(s.duration for s in out) == pytest.approx(30.9)


def test_separate_utterances_are_never_merged() -> None:
    spans = [(1.0, 2.0), (2.5, 3.4), (4.0, 5.5)]  # three short utterances, 0.5 s apart
    x = envelope(7, spans)
    out = plan([seg(a, b) for a, b in spans], x, SegmentationConfig(pad_s=0))
    assert [(s.start, s.end) for s in out] == spans


def test_short_blip_alone_is_dropped_and_just_before_a_span_is_joined() -> None:
    x = envelope(10, [(1, 3), (3.05, 3.2), (6, 6.1), (7.8, 7.95), (8, 9)])
    segs = [
        seg(1, 3),
        seg(3.05, 3.2),  # 150 ms right after speech: that utterance was handed on, dropped
        seg(6, 6.1),  # 100 ms, far from anything
        seg(7.8, 7.95),  # 150 ms, 50 ms before the next span: its cut-off onset
        seg(8, 9),
    ]
    out = plan(segs, x, SegmentationConfig(min_utterance_s=0.3, merge_gap_s=0.2, pad_s=0))
    assert [(s.start, s.end) for s in out] == [(1, 3), (7.8, 9)]


def test_short_fragment_joins_the_span_after_it() -> None:
    x = envelope(6, [(0, 6)])
    out = plan(
        [seg(0.5, 2.0), seg(2.15, 2.3), seg(2.4, 4.0)],
        x,
        SegmentationConfig(merge_gap_s=0.2, pad_s=0),
    )
    assert [(s.start, s.end) for s in out] == [(0.5, 2.0), (2.15, 4.0)]


def test_padding_is_clamped_to_the_audio_and_never_overlaps() -> None:
    x = envelope(5, [(0.05, 1), (1.1, 2), (3, 4.95)])
    out = plan(
        [seg(0.05, 1), seg(1.1, 2), seg(3, 4.95)],
        x,
        SegmentationConfig(pad_s=0.1, min_utterance_s=0.3),
    )
    # the end gets the whole pad; the next start only what is left of the gap
    got = [t for s in out for t in (s.start, s.end)]
    assert got == pytest.approx([0.0, 1.1, 1.1, 2.1, 2.9, 5.0])


def test_segments_are_clipped_sorted_and_one_channel_only() -> None:
    x = envelope(3, [(0, 3)])
    out = plan([seg(2.0, 9.0), seg(-1.0, 1.0)], x, SegmentationConfig(pad_s=0))
    assert [(s.start, s.end) for s in out] == [(0.0, 1.0), (2.0, 3.0)]
    with pytest.raises(ValueError, match="one channel"):
        plan([seg(0, 1), Segment(channel=1, start=1, end=2)], x)
    assert plan([], x) == []


def test_config_validation() -> None:
    with pytest.raises(ValidationError, match="twice"):
        SegmentationConfig(min_utterance_s=5, max_utterance_s=8)
    with pytest.raises(ValidationError, match="split_search_s"):
        SegmentationConfig(max_utterance_s=4, split_search_s=5)
    with pytest.raises(ValidationError, match="extra"):
        SegmentationConfig.model_validate({"merge_vad": True})


def test_plan_on_a_real_call_channel(fsmn_vad: FsmnVad) -> None:
    """The customer's 23 s turn in the testdata call comes back as pieces of <= 15 s."""
    samples = decode(TESTDATA / "aws-lca_Auto_Repairs_49_stereo_first40s.wav").channels[0]
    found = fsmn_vad.segments(samples, channel=0)
    assert max(s.duration for s in found) > 15  # the case this test is about
    cfg = SegmentationConfig()
    out = plan(found, samples, cfg)
    assert len(out) > len(found)
    assert all(s.duration <= cfg.max_utterance_s + 2 * cfg.pad_s for s in out)
    assert all(a.end <= b.start for a, b in itertools.pairwise(out))
    assert all(0 <= s.start < s.end <= samples.size / SR for s in out)
    assert {s.source for s in out} <= {"speech", "sound"} and {s.channel for s in out} == {0}
