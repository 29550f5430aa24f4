"""One channel of a live call: its 16 kHz audio buffered, the streaming VAD stepped, the
spans handed to the same ``Segmenter`` a recording goes through."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from callsense.pipeline.config import CallsenseConfig
from callsense.pipeline.model import Segment
from callsense.pipeline.segmentation import ChannelAudio, Segmenter
from callsense.pipeline.vad import StreamingVad

__all__ = ["ChannelSegmenter", "ClosedSegment"]

SAMPLE_RATE = 16000


@dataclass(frozen=True, slots=True)
class ClosedSegment:
    """A segment ready to recognize: its audio, the channel audio around it (for marking
    it speech or sound) and the stream position when it was closed."""

    segment: Segment
    clip: np.ndarray
    context: ChannelAudio
    closed_at: float


_MARK_CONTEXT_S = 0.6  # audio kept before a segment: silero's 0.5 s warm-up, frame-aligned


class ChannelSegmenter:
    """One channel of a live call: buffers its 16 kHz audio, steps the streaming VAD and
    hands the spans to the same ``Segmenter`` a recording goes through."""

    def __init__(self, channel: int, vad: StreamingVad, cfg: CallsenseConfig) -> None:
        self.channel = channel
        self.vad = vad
        self.segmenter = Segmenter(cfg.segmentation, channel)
        self.scores = vad.scorer.channel_scores()  # channel mode: silero as audio arrives
        self.cache: dict[str, Any] = {}
        self.pending: list[np.ndarray] = []
        self.pending_n = 0
        self.buf = np.zeros(0, dtype=np.float32)
        self.buf_start = 0  # absolute sample index of buf[0]
        self.fed = 0  # samples given to the VAD so far
        self.chunk = int(vad.chunk_ms * SAMPLE_RATE / 1000)
        self.finished = False

    @property
    def position(self) -> float:
        return (self.fed + self.pending_n) / SAMPLE_RATE

    def earliest_end(self) -> float:
        """No segment this channel closes later ends before this."""
        if self.finished:
            return float("inf")
        heard = self.fed / SAMPLE_RATE
        return self.segmenter.earliest_end(
            settled=heard - self.vad.start_lag_s, lasting=heard - self.vad.end_lag_s
        )

    def add(self, samples: np.ndarray) -> None:
        if samples.size:
            self.pending.append(samples)
            self.pending_n += samples.size

    @property
    def ready(self) -> bool:
        return self.pending_n >= self.chunk

    def step(self, *, final: bool = False) -> list[ClosedSegment]:
        """Run the VAD on what is pending (whole chunks, or everything when ``final``)."""
        if not self.pending_n and not final:
            return []
        data = np.concatenate(self.pending) if self.pending else np.zeros(0, np.float32)
        take = data.size if final else data.size - data.size % self.chunk
        now, rest = data[:take], data[take:]
        self.pending = [rest] if rest.size else []
        self.pending_n = rest.size
        self.buf = np.concatenate((self.buf, now)) if self.buf.size else now.copy()
        self.fed += now.size
        if self.scores is not None:
            self.scores.feed(now)
        audio = ChannelAudio(self.buf, self.buf_start / SAMPLE_RATE)
        seg = self.segmenter
        out: list[Segment] = []
        for beg, end in self.vad.step(self.cache, now, final=final) if now.size or final else []:
            if beg >= 0:
                out += seg.opened(beg / 1000.0, audio)
            if end >= 0:
                out += seg.closed(end / 1000.0, audio)
        if final:
            out += seg.finish(audio)
            self.finished = True
            if self.scores is not None:
                self.scores.finish()
        else:
            heard = audio.position
            out += seg.advance(
                audio, settled=heard - self.vad.lag_s, lasting=heard - self.vad.end_lag_s
            )
        closed = [self._cut(s, audio) for s in out]
        self._trim()
        return closed

    def _cut(self, seg: Segment, audio: ChannelAudio) -> ClosedSegment:
        a = max(0, round(seg.start * SAMPLE_RATE) - self.buf_start)
        b = max(a, round(seg.end * SAMPLE_RATE) - self.buf_start)
        c = max(0, a - round(_MARK_CONTEXT_S * SAMPLE_RATE))
        context = ChannelAudio(self.buf[c:b], (self.buf_start + c) / SAMPLE_RATE)
        clip = np.ascontiguousarray(self.buf[a:b])
        return ClosedSegment(seg, clip, context, closed_at=round(audio.position, 4))

    def _trim(self) -> None:
        """Keep only the audio a pending or next segment may still need."""
        needed = self.segmenter.earliest_pending
        keep_from = self.fed / SAMPLE_RATE - max(1.0, self.segmenter.cfg.pad_s)
        if needed is not None:
            keep_from = min(keep_from, needed)
        drop = int((keep_from - _MARK_CONTEXT_S) * SAMPLE_RATE) - self.buf_start
        if drop > 0:
            self.buf = self.buf[drop:]
            self.buf_start += drop
