"""From VAD spans to utterances, incrementally: one ``Segmenter`` per channel for batch and live.

Batch feeds a channel's VAD spans and then calls ``finish``; a live call feeds each span as
the streaming VAD closes it. The rules only look back, or forward as far as the audio
already received, so the same spans give the same utterances whichever way they come, and
a recording and its live stream count the same utterances (and reach the same decisions).

Separate utterances are never merged into longer blocks (SenseVoice's ``merge_vad`` would
join them into 15 s chunks): the rules count utterances, and "three consecutive ANGRY
utterances" must see three. The only joining is a fragment shorter than
``min_utterance_s`` followed within ``merge_gap_s`` by the next span: it is that span's
onset cut off by the VAD and is joined to it. A short fragment with no span that close after
it is dropped (an utterance already handed on is never changed).

A span longer than ``max_utterance_s`` is cut at the quietest point (lowest short-time
energy, i.e. a pause between words) within ``split_search_s`` before the length limit,
repeatedly, never leaving a tail shorter than ``min_utterance_s``; a live span still open
is cut once the VAD guarantees it runs ``min_utterance_s`` past the limit, which gives the
same cut.

Each utterance gets ``pad_s`` of audio after its end (up to the end of the audio) and up to
``pad_s`` before its start, never reaching into the previous utterance's padding.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from callsense.pipeline.audio import SAMPLE_RATE
from callsense.pipeline.model import Segment

__all__ = ["ChannelAudio", "SegmentationConfig", "Segmenter", "lowest_energy_point", "plan"]

_HOP_S = 0.01  # energy is compared on a 10 ms grid
_WINDOW_S = 0.05  # over 50 ms windows, so a pause wins over one zero crossing
_EPS = 1e-9


class SegmentationConfig(BaseModel):
    """``segmentation:`` in YAML (all times in seconds)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    min_utterance_s: float = Field(default=0.3, ge=0)
    max_utterance_s: float = Field(default=15.0, gt=0)
    pad_s: float = Field(default=0.1, ge=0, description="added each side, never into a neighbour")
    merge_gap_s: float = Field(
        default=0.2, ge=0, description="a short fragment this close is joined"
    )
    split_search_s: float = Field(
        default=5.0, gt=0, description="where to look for a long one's cut"
    )

    @model_validator(mode="after")
    def _limits(self) -> SegmentationConfig:
        if self.max_utterance_s <= 2 * self.min_utterance_s:
            raise ValueError(
                f"max_utterance_s ({self.max_utterance_s}) must be more than twice "
                f"min_utterance_s ({self.min_utterance_s})"
            )
        if self.split_search_s > self.max_utterance_s - self.min_utterance_s:
            raise ValueError(
                f"split_search_s ({self.split_search_s}) must be at most max_utterance_s - "
                f"min_utterance_s ({self.max_utterance_s - self.min_utterance_s:g})"
            )
        return self


@dataclass(frozen=True, slots=True)
class ChannelAudio:
    """The part of one channel's 16 kHz audio a segmenter may read: ``samples`` start at
    ``offset`` seconds; ``position`` (their end) is how far the channel has been heard."""

    samples: np.ndarray
    offset: float = 0.0
    sample_rate: int = SAMPLE_RATE

    @property
    def position(self) -> float:
        return self.offset + self.samples.size / self.sample_rate

    def quietest(self, lo: float, hi: float) -> float:
        """``lowest_energy_point`` in absolute seconds."""
        return self.offset + lowest_energy_point(
            self.samples, lo - self.offset, hi - self.offset, self.sample_rate
        )


class Segmenter:
    """One channel's VAD spans in (in time order), utterances to recognize out, each as
    soon as no later audio can change it. See the module doc for the rules."""

    def __init__(self, cfg: SegmentationConfig | None = None, channel: int = 0) -> None:
        self.cfg = cfg or SegmentationConfig()
        self.channel = channel
        self._fragment: tuple[float, float] | None = None  # short, waiting for a neighbour
        self._open: float | None = None  # start of a span the VAD has not closed yet
        self._tail: tuple[float, float] | None = None  # waiting for its end padding
        self._padded_end = 0.0  # end of the last utterance handed on, padding included
        self._seen_end = 0.0  # end of the last span taken (later spans start after it)

    @property
    def earliest_pending(self) -> float | None:
        """The earliest time still needed (audio before it may be dropped)."""
        times = [t[0] for t in (self._fragment, self._tail) if t is not None]
        if self._open is not None:
            times.append(self._open)
        return min(times) - self.cfg.pad_s if times else None

    def earliest_end(self, *, settled: float, lasting: float) -> float:
        """No utterance handed on later ends before this (``settled`` and ``lasting`` as
        for ``advance``): lets a live call hand utterances of several channels to the
        rules in the order they end, as a recording's are."""
        if self._tail is not None:
            return self._tail[1]
        if self._open is not None:  # a piece of it, or all of it, ends after this
            return max(self._open + self.cfg.min_utterance_s, lasting)
        # a span not reported yet starts after ``settled``; alone it needs the minimum length
        return settled + (0.0 if self._fragment is not None else self.cfg.min_utterance_s)

    def opened(self, start: float, audio: ChannelAudio) -> list[Segment]:
        """The VAD says a span began at ``start`` (streaming only)."""
        out = self._release_tail(audio)
        self._open = self._begin(start)
        return out + self.advance(audio)

    def span(self, start: float, end: float, audio: ChannelAudio) -> list[Segment]:
        """A closed VAD span (a recording's VAD gives whole spans)."""
        return self._take(self._begin(start), end, audio)

    def closed(self, end: float, audio: ChannelAudio) -> list[Segment]:
        """The span ``opened`` last ended at ``end`` (streaming)."""
        if self._open is None:
            return self._release_tail(audio)
        start, self._open = self._open, None
        return self._take(start, end, audio)

    def advance(
        self, audio: ChannelAudio, *, settled: float | None = None, lasting: float | None = None
    ) -> list[Segment]:
        """More audio was heard. ``settled``: no span the VAD reports later starts before it
        (lets a lone short fragment go). ``lasting``: the open span lasts at least until then;
        once that is ``min_utterance_s`` past its length limit, it is cut as a closed one is."""
        out = self._release_tail(audio)
        fragment = self._fragment
        if (
            fragment is not None
            and settled is not None
            and settled > fragment[1] + self.cfg.merge_gap_s
        ):
            self._fragment = None
        cfg = self.cfg
        while (
            self._open is not None
            and lasting is not None
            and lasting - self._open >= cfg.max_utterance_s + cfg.min_utterance_s
        ):
            start = self._open
            cut = self._cut(start, start + cfg.max_utterance_s, audio)
            out.append(self._emit(start, cut, cut))
            self._open = cut
        return out

    def finish(self, audio: ChannelAudio) -> list[Segment]:
        """The end of the channel: an open span closes there, a waiting fragment is dropped."""
        out = self.closed(audio.position, audio)
        self._fragment = None
        if self._tail is not None:
            a, b = self._tail
            self._tail = None
            out.append(self._emit(a, b, min(audio.position, b + self.cfg.pad_s)))
        return out

    # -- internals -------------------------------------------------------------------------

    def _take(self, start: float, end: float, audio: ChannelAudio) -> list[Segment]:
        out = self._release_tail(audio)
        end = min(end, audio.position)
        self._seen_end = max(self._seen_end, end)
        if end - start < self.cfg.min_utterance_s - _EPS:
            if end > start:
                self._fragment = (start, end)
            return out
        pieces = self._cuts(start, end, audio)
        for a, b in pieces[:-1]:
            out.append(self._emit(a, b, b))
        self._tail = pieces[-1]
        return out + self._release_tail(audio)

    def _begin(self, start: float) -> float:
        """Where a new span starts: never inside what was taken already, and at a waiting
        fragment's start when that fragment ends within ``merge_gap_s`` of it."""
        start = max(start, self._seen_end, 0.0)
        if self._fragment is not None:
            frag_start, frag_end = self._fragment
            self._fragment = None
            if start - frag_end <= self.cfg.merge_gap_s + _EPS:
                return frag_start
        return start

    def _cuts(self, start: float, end: float, audio: ChannelAudio) -> list[tuple[float, float]]:
        cfg = self.cfg
        pieces = []
        while end - start > cfg.max_utterance_s:
            cut = self._cut(
                start, min(start + cfg.max_utterance_s, end - cfg.min_utterance_s), audio
            )
            pieces.append((start, cut))
            start = cut
        pieces.append((start, end))
        return pieces

    def _cut(self, start: float, hi: float, audio: ChannelAudio) -> float:
        cfg = self.cfg
        limit = start + cfg.max_utterance_s
        lo = min(hi, max(start + cfg.min_utterance_s, limit - cfg.split_search_s))
        cut = audio.quietest(lo, hi)
        return cut if cut > start else hi

    def _release_tail(self, audio: ChannelAudio) -> list[Segment]:
        if self._tail is None or audio.position < self._tail[1] + self.cfg.pad_s - _EPS:
            return []
        a, b = self._tail
        self._tail = None
        return [self._emit(a, b, b + self.cfg.pad_s)]

    def _emit(self, start: float, end: float, padded_end: float) -> Segment:
        padded_start = max(0.0, self._padded_end, start - self.cfg.pad_s)
        padded_start = min(padded_start, start)
        self._padded_end = padded_end
        return Segment(self.channel, round(padded_start, 4), round(padded_end, 4))


def plan(
    segments: Sequence[Segment],
    samples: np.ndarray,
    cfg: SegmentationConfig | None = None,
    *,
    sample_rate: int = SAMPLE_RATE,
) -> list[Segment]:
    """The utterances to recognize for one channel (``samples``: that channel's audio):
    its VAD spans fed to a ``Segmenter`` in time order, then ``finish``."""
    channels = {s.channel for s in segments}
    if len(channels) > 1:
        raise ValueError(f"plan() takes one channel's segments (got channels {sorted(channels)})")
    segmenter = Segmenter(cfg, channels.pop() if channels else 0)
    audio = ChannelAudio(samples, 0.0, sample_rate)
    out: list[Segment] = []
    for seg in sorted(segments, key=lambda s: s.start):
        out += segmenter.span(seg.start, seg.end, audio)
    return out + segmenter.finish(audio)


def lowest_energy_point(samples: np.ndarray, lo: float, hi: float, sample_rate: int) -> float:
    """Time in [lo, hi] (seconds) where the 50 ms short-time energy is lowest.

    Ties (a flat stretch of silence) resolve to the middle of the quietest run, so a cut
    lands in the middle of a pause rather than at its edge.
    """
    hop = max(1, round(_HOP_S * sample_rate))
    half = max(1, round(_WINDOW_S * sample_rate / 2))
    centres = np.arange(round(lo * sample_rate), round(hi * sample_rate) + 1, hop)
    if centres.size == 0:
        return lo
    sq = np.concatenate(([0.0], np.cumsum(np.asarray(samples, dtype=np.float64) ** 2)))
    a = np.clip(centres - half, 0, samples.size)
    b = np.clip(centres + half, 0, samples.size)
    energy = (sq[b] - sq[a]) / np.maximum(b - a, 1)
    lowest = energy.min()
    quiet = np.flatnonzero(energy <= lowest + 1e-12 * max(1.0, lowest))
    # the longest run of equally quiet points, and its middle
    breaks = np.flatnonzero(np.diff(quiet) > 1)
    starts = np.concatenate(([0], breaks + 1))
    ends = np.concatenate((breaks, [quiet.size - 1]))
    longest = int(np.argmax(ends - starts))
    mid = (quiet[starts[longest]] + quiet[ends[longest]]) // 2
    return float(centres[mid] / sample_rate)
