"""Is a segment speech or another sound? silero's frame probabilities, weighted by energy.

The loud part of a segment decides, so the silence FSMN-VAD keeps around an utterance does
not dilute it. The threshold leans toward ``speech`` (silero scores shouted, angry speech
lower than calm speech, and calling speech a sound would hide it from the rules); the
recognizer step also overrides ``source`` with SenseVoice's own event tag when it heard no
speech. Without the silero-vad package, segments are left ``speech`` with ``speech_prob=None``.

Two modes (``vad.speech_scoring``), each the same for a recording and a live stream:

* ``channel``: silero runs over the whole channel (``ChannelScores``: at once for a
  recording, alongside FSMN-VAD; frame by frame as a live stream's audio arrives) and a
  segment's score is read from the frames it covers. Best on music.
* ``segments``: silero runs over each segment alone, after 0.5 s of context before it.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from callsense.pipeline.audio import SAMPLE_RATE
from callsense.pipeline.model import Segment, Source
from callsense.pipeline.segmentation import ChannelAudio

__all__ = ["ChannelScores", "SpeechScorer", "silero_available", "silero_model"]

log = logging.getLogger(__name__)

FRAME = 512  # samples per silero-vad frame at 16 kHz (32 ms)
_CONTEXT = 64  # samples of the previous frame each silero frame sees
_WARMUP_FRAMES = 16  # 0.5 s of context before a segment when scoring it alone


@functools.cache
def silero_available() -> bool:
    try:
        import silero_vad  # noqa: F401
    except ImportError:
        return False
    return True


@functools.cache
def silero_model() -> Any:
    """silero-vad's ONNX model (shipped in its wheel), loaded once per process."""
    from silero_vad import load_silero_vad

    return load_silero_vad(onnx=True)


def silero_session() -> Any:
    """The model's ONNX graph, run frame by frame here with the state kept by the caller:
    no shared state, so threads and live calls score at once (same numbers as silero's own
    ``audio_forward``)."""
    return silero_model().session


class ChannelScores:
    """silero's speech probability and the energy of every 32 ms frame of one channel,
    computed as the channel's audio arrives (``feed``) or all at once."""

    def __init__(self) -> None:
        self._session = silero_session()
        self._state = np.zeros((2, 1, 128), dtype=np.float32)
        self._context = np.zeros(_CONTEXT, dtype=np.float32)
        self._pending = np.zeros(0, dtype=np.float32)
        self._probs: list[float] = []
        self._energy: list[float] = []
        self._rate = np.array(SAMPLE_RATE, dtype=np.int64)

    @classmethod
    def of(cls, samples: np.ndarray) -> ChannelScores:
        scores = cls()
        scores.feed(samples)
        scores.finish()
        return scores

    @property
    def probs(self) -> np.ndarray:
        return np.asarray(self._probs, dtype=np.float32)

    @property
    def energy(self) -> np.ndarray:
        return np.asarray(self._energy, dtype=np.float64)

    def feed(self, samples: np.ndarray) -> None:
        """Score every whole frame heard so far."""
        data = np.concatenate((self._pending, np.asarray(samples, dtype=np.float32)))
        whole = data.size - data.size % FRAME
        if whole:
            self._frames(data[:whole])
        self._pending = data[whole:]

    def finish(self) -> None:
        """The channel ended: its last partial frame is scored padded with silence."""
        if self._pending.size:
            frame = np.zeros(FRAME, dtype=np.float32)
            frame[: self._pending.size] = self._pending
            self._pending = np.zeros(0, dtype=np.float32)
            self._frames(frame)

    def _frames(self, data: np.ndarray) -> None:
        """Whole frames, in order: each sees the previous frame's last samples and state."""
        padded = np.concatenate((self._context, data))
        run, feeds = self._session.run, {"state": self._state, "sr": self._rate}
        for a in range(0, data.size, FRAME):
            feeds["input"] = padded[None, a : a + _CONTEXT + FRAME]
            prob, feeds["state"] = run(None, feeds)
            self._probs.append(float(prob[0, 0]))
        self._state = feeds["state"]
        self._context = data[-_CONTEXT:].copy()
        frames = data.reshape(-1, FRAME).astype(np.float64)
        self._energy.extend((np.mean(frames * frames, axis=1) + 1e-10).tolist())

    def score(self, segment: Segment) -> float | None:
        """Energy-weighted speech probability over the frames the segment touches."""
        n = len(self._probs)
        if n == 0:
            return None
        a = min(round(segment.start * SAMPLE_RATE) // FRAME, n - 1)
        b = max(a + 1, min(n, -(-round(segment.end * SAMPLE_RATE) // FRAME)))
        w = np.asarray(self._energy[a:b])
        return float(np.sum(np.asarray(self._probs[a:b]) * w) / np.sum(w))


class SpeechScorer:
    """Marks segments ``speech`` or ``sound``; shared by every call (it holds no audio)."""

    def __init__(self, threshold: float = 0.5, *, per_segment: bool = False) -> None:
        self.threshold = threshold
        self.per_segment = per_segment
        self.available = silero_available()
        if not self.available:
            log.warning("silero-vad not installed: VAD segments are all marked 'speech'")

    def frame_probs(self, samples: np.ndarray) -> np.ndarray:
        """One probability per 32 ms frame of 16 kHz ``samples``."""
        return ChannelScores.of(samples).probs

    def channel_scores(self) -> ChannelScores | None:
        """What a channel's frames must be scored into, when this mode reads them."""
        return ChannelScores() if self.available and not self.per_segment else None

    def mark(
        self,
        segments: Sequence[Segment],
        audio: ChannelAudio,
        scores: ChannelScores | None = None,
    ) -> list[Segment]:
        """Fill ``speech_prob`` and ``source`` of segments of the channel ``audio``;
        ``scores``: the channel's frames (``channel`` mode; computed here when None)."""
        if not segments or not self.available:
            return list(segments)
        if not self.per_segment and scores is None:
            scores = ChannelScores.of(audio.samples)  # a whole channel from its start
        out = []
        for seg in segments:
            prob = scores.score(seg) if scores is not None else self._score_alone(seg, audio)
            out.append(self._marked(seg, prob))
        return out

    def _marked(self, seg: Segment, prob: float | None) -> Segment:
        if prob is None:
            return seg
        source: Source = "speech" if prob >= self.threshold else "sound"
        return replace(seg, speech_prob=round(prob, 4), source=source)

    def _score_alone(self, seg: Segment, audio: ChannelAudio) -> float | None:
        """The segment's frames after up to 0.5 s of context (frames counted from the
        channel's start, so a live buffer and a whole recording agree)."""
        base = round(audio.offset * SAMPLE_RATE)
        a = round(seg.start * SAMPLE_RATE) // FRAME * FRAME
        b = -(-round(seg.end * SAMPLE_RATE) // FRAME) * FRAME
        b = min(b, base + audio.samples.size)
        n = (b - a) // FRAME
        if n < 1:
            return None
        warm = min(a - base, _WARMUP_FRAMES * FRAME) // FRAME
        start = a - warm * FRAME
        chunk = audio.samples[start - base : b - base]
        scores = ChannelScores.of(chunk)
        probs = scores.probs[warm : warm + n]
        energy = scores.energy[warm : warm + n]
        return float(np.sum(probs * energy) / np.sum(energy))
