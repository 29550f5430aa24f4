"""Raw PCM: samples without a container, and the one 8 kHz -> 16 kHz upsampler.

Live streams send frames as bytes (16-bit PCM, G.711 mu-law) that become float32 here; a
decoded 8 kHz recording goes through the same upsampler as a stream of it would, so both
give the VAD and the model the same samples. ``pipeline.audio`` re-exports all of this.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.signal import firwin, lfilter, resample_poly, upfirdn

__all__ = [
    "SAMPLE_RATE",
    "Upsampler",
    "mulaw_to_float",
    "pcm16_to_float",
    "resample",
    "upsample_8k",
]

SAMPLE_RATE = 16000


class Upsampler:
    """8 kHz -> 16 kHz, continuous across frames: the one upsampler of telephony audio, for
    a recording (all at once) and a live stream (frame by frame), so both give the VAD and
    the model the same samples. A polyphase filter applied per 20 ms frame would ring at
    every frame edge; this keeps its state. The filter is scipy ``resample_poly``'s for 1:2
    (Kaiser 5.0, cutoff at 8 kHz's Nyquist, 41 taps); its delay is dropped so times stay
    exact, and ``flush`` gives the delayed last samples at the end of the audio."""

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
        # the filter overshoots a full-scale edge a little; the models want [-1, 1]
        return np.clip(y, -1.0, 1.0).astype(np.float32)

    def flush(self) -> np.ndarray:
        """The samples still inside the filter, so the output is twice the input's length."""
        return self(np.zeros((self._TAPS - 1) // 4, dtype=np.float32))


def upsample_8k(samples: np.ndarray, *, block: int = 1 << 18) -> np.ndarray:
    """A whole 8 kHz channel at 16 kHz: what ``Upsampler`` gives frame by frame and then
    ``flush``, computed at once by a polyphase filter (the same taps, several times faster).

    Computed ``block`` input samples at a time, each with the neighbours its outputs need,
    so the float64 working copies stay small however long the call is; every output sample
    is the same sum over the same inputs as in one pass."""
    taps = Upsampler().taps
    delay = (len(taps) - 1) // 2
    context = len(taps) // 2  # input samples either side that reach a block's outputs
    x = np.asarray(samples)
    n = x.size
    out = np.empty(2 * n, dtype=np.float32)
    for a in range(0, n, block):
        b = min(n, a + block)
        lo, hi = max(0, a - context), min(n, b + context)
        y = upfirdn(taps, x[lo:hi].astype(np.float64), up=2)
        start = delay + 2 * (a - lo)
        out[2 * a : 2 * b] = np.clip(y[start : start + 2 * (b - a)], -1.0, 1.0)
    return out


def pcm16_to_float(data: bytes, channels: int = 1) -> tuple[np.ndarray, ...]:
    """Interleaved little-endian signed 16-bit PCM to float32 in [-1, 1), one array per channel.

    A trailing partial frame is an error: a stream framing bug must not shift the channels.
    """
    if channels < 1:
        raise ValueError(f"channels must be >= 1 (got {channels})")
    frame = 2 * channels
    if len(data) % frame:
        raise ValueError(f"{len(data)} bytes is not a whole number of {channels}-channel frames")
    pcm = np.frombuffer(data, dtype="<i2").astype(np.float32) / 32768.0
    block = pcm.reshape(-1, channels)
    return tuple(block[:, i].copy() for i in range(channels))


def _mulaw_table() -> np.ndarray:
    """G.711 μ-law expansion of all 256 codes (ITU-T G.711; audioop left Python in 3.13)."""
    codes = ~np.arange(256, dtype=np.int32) & 0xFF
    sign = codes & 0x80
    exponent = (codes >> 4) & 0x07
    mantissa = codes & 0x0F
    magnitude = (((mantissa << 3) + 0x84) << exponent) - 0x84
    linear = np.where(sign != 0, -magnitude, magnitude)
    return (linear / 32768.0).astype(np.float32)


_MULAW = _mulaw_table()


def mulaw_to_float(data: bytes) -> np.ndarray:
    """G.711 μ-law bytes (telephony, usually 8 kHz mono) to float32 in [-1, 1)."""
    return _MULAW[np.frombuffer(data, dtype=np.uint8)]


def resample(samples: np.ndarray, src_rate: int, dst_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Polyphase resampling (scipy, a funasr dependency) with its anti-aliasing filter."""
    if src_rate <= 0 or dst_rate <= 0:
        raise ValueError(f"sample rates must be positive (got {src_rate} -> {dst_rate})")
    if src_rate == dst_rate:
        return np.asarray(samples, dtype=np.float32)
    g = math.gcd(src_rate, dst_rate)
    out: np.ndarray = resample_poly(
        np.asarray(samples, dtype=np.float32), dst_rate // g, src_rate // g
    )
    return out.astype(np.float32, copy=False)
