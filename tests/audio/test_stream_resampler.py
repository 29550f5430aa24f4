"""``StreamResampler``: frame by frame, the samples a whole-array resample gives."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from callsense.pipeline.audio import resample
from callsense.pipeline.resampler import StreamResampler

RATES = [(48000, 16000), (44100, 16000), (24000, 16000), (22050, 16000), (16000, 8000)]


def streamed(x: np.ndarray, src: int, dst: int, sizes: list[int]) -> np.ndarray:
    step = StreamResampler(src, dst)
    out, at, i = [], 0, 0
    while at < x.size:
        n = sizes[i % len(sizes)]
        out.append(step(x[at : at + n]))
        at, i = at + n, i + 1
    return np.concatenate([*out, step.flush()])


@pytest.mark.parametrize(("src", "dst"), RATES)
def test_frames_give_the_whole_array_resample(src: int, dst: int) -> None:
    x = (np.random.default_rng(src).standard_normal(src + 123) * 0.1).astype(np.float32)
    out = streamed(x, src, dst, [src // 50])  # 20 ms frames
    whole = resample(x, src, dst)
    assert out.size == whole.size
    np.testing.assert_allclose(out, whole, atol=1e-6)


@settings(max_examples=25, deadline=None)
@given(sizes=st.lists(st.integers(1, 2000), min_size=1, max_size=8))
def test_any_frame_sizes(sizes: list[int]) -> None:
    x = (np.random.default_rng(1).standard_normal(9000) * 0.1).astype(np.float32)
    np.testing.assert_allclose(streamed(x, 48000, 16000, sizes), resample(x, 48000, 16000),
                               atol=1e-6)  # fmt: skip


def test_equal_rates_pass_samples_through() -> None:
    step = StreamResampler(16000, 16000)
    x = np.arange(5, dtype=np.float32)
    np.testing.assert_array_equal(step(x), x)
    assert step.flush().size == 0
