"""Any sample rate to any other, frame by frame, giving what a whole-array resample gives.

Live calls take 8 kHz (``pipeline.audio.Upsampler``) and 16 kHz; voice-agent frameworks
hand over whatever their transport speaks (24 kHz, 44.1 kHz, 48 kHz WebRTC). Resampling
each 20 ms frame on its own would ring at every frame edge, so this keeps the filter's state
across frames: the output of ``__call__`` over all frames and then ``flush`` equals
``pipeline.audio.resample`` (scipy ``resample_poly``: the same Kaiser-windowed filter and
alignment) of the whole signal, so a stream and its recording give the VAD the same samples.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.signal import firwin

__all__ = ["StreamResampler"]


class StreamResampler:
    """Polyphase resampling ``src_rate`` -> ``dst_rate`` that keeps its state between calls.

    Output sample ``n`` is the filtered, zero-stuffed input at ``n * down + delay``; it is
    produced as soon as every input sample it needs has arrived (the filter's half length:
    10 input samples at most, under a millisecond at 16 kHz and above).
    """

    def __init__(self, src_rate: int, dst_rate: int) -> None:
        if src_rate <= 0 or dst_rate <= 0:
            raise ValueError(f"sample rates must be positive (got {src_rate} -> {dst_rate})")
        g = math.gcd(src_rate, dst_rate)
        self.src_rate, self.dst_rate = src_rate, dst_rate
        self.up, self.down = dst_rate // g, src_rate // g
        self.received = 0
        self.produced = 0
        self.flushed = False
        if self.up == self.down:  # nothing to do: samples pass as they are
            self.delay = self.width = 0
            self.phases = self.history = np.zeros(0)
            return
        widest = max(self.up, self.down)
        half = 10 * widest  # resample_poly's half length and window
        taps = firwin(2 * half + 1, 1.0 / widest, window=("kaiser", 5.0)) * self.up
        self.delay = half
        self.width = -(-taps.size // self.up)  # input samples per output sample
        padded = np.zeros(self.width * self.up)
        padded[: taps.size] = taps
        # phase r, tap k multiplies input i - k where i = (n * down + delay) // up
        self.phases = padded.reshape(self.width, self.up).T.copy()
        self.history = np.zeros(self.width - 1)

    def __call__(self, samples: np.ndarray) -> np.ndarray:
        """The output samples this input completes (float32)."""
        if self.up == self.down:
            return np.asarray(samples, dtype=np.float32)
        x = np.asarray(samples, dtype=np.float64)
        buf = np.concatenate((self.history, x))
        base = self.received - (self.width - 1)  # input index of buf[0]
        self.received += x.size
        # the last output whose newest input has arrived: (n*down + delay) // up < received
        end = (self.received * self.up - 1 - self.delay) // self.down + 1
        n = np.arange(self.produced, max(end, self.produced))
        self.history = buf[buf.size - (self.width - 1) :]
        if not n.size:
            return np.zeros(0, np.float32)
        self.produced = int(n[-1]) + 1
        pos = n * self.down + self.delay
        newest, phase = pos // self.up, pos % self.up
        index = newest[:, None] - np.arange(self.width)[None, :] - base
        y = np.einsum("ij,ij->i", buf[index], self.phases[phase])
        return y.astype(np.float32)

    def flush(self) -> np.ndarray:
        """The last samples, held back by the filter: the output then has the length a
        whole-array ``resample_poly`` gives (``ceil(n * up / down)``)."""
        if self.flushed or self.up == self.down:
            return np.zeros(0, np.float32)
        self.flushed = True
        total = -(-self.received * self.up // self.down)
        received = self.received
        tail = self(np.zeros(self.delay // self.up + self.width + 1))
        self.received = received
        return tail[: max(0, total - (self.produced - tail.size))]
