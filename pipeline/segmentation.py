"""From VAD segments to utterances: one utterance per segment, within length limits, padded.

Separate utterances are never merged into longer blocks (SenseVoice's ``merge_vad`` would
join them into 15 s chunks): the rules count utterances, and "three consecutive ANGRY
utterances" must see three. The only joining is a fragment shorter than
``min_utterance_s`` that almost touches a neighbour (gap <= ``merge_gap_s``), which is a
piece of that neighbour cut off by the VAD; a short fragment standing alone is dropped.

Segments longer than ``max_utterance_s`` are cut at the quietest point (lowest short-time
energy, i.e. a pause between words) within ``split_search_s`` before the length limit,
repeatedly, so each piece is as long as allowed and no cut lands mid-word if a pause exists.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from pipeline.audio import SAMPLE_RATE
from pipeline.model import Segment, Source

__all__ = ["SegmentationConfig", "lowest_energy_point", "plan"]

_HOP_S = 0.01  # energy is compared on a 10 ms grid
_WINDOW_S = 0.05  # over 50 ms windows, so a pause wins over one zero crossing


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


def plan(
    segments: Sequence[Segment],
    samples: np.ndarray,
    cfg: SegmentationConfig | None = None,
    *,
    sample_rate: int = SAMPLE_RATE,
) -> list[Segment]:
    """The utterances to recognize for one channel: ``samples`` is that channel's audio.

    Pieces of a split segment keep its ``source`` and ``speech_prob``.
    """
    cfg = cfg or SegmentationConfig()
    channels = {s.channel for s in segments}
    if len(channels) > 1:
        raise ValueError(f"plan() takes one channel's segments (got channels {sorted(channels)})")
    total = samples.size / sample_rate
    segs = sorted(
        (replace(s, start=max(0.0, s.start), end=min(total, s.end)) for s in segments),
        key=lambda s: s.start,
    )
    segs = _no_overlap([s for s in segs if s.end > s.start])
    segs = _absorb_short(segs, cfg)
    pieces: list[Segment] = []
    for seg in segs:
        pieces.extend(_split(seg, samples, sample_rate, cfg))
    return _pad(pieces, total, cfg.pad_s)


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


def _no_overlap(segs: list[Segment]) -> list[Segment]:
    """Overlapping VAD spans (possible with some engines) are cut at the later start."""
    out: list[Segment] = []
    for seg in segs:
        if out and seg.start < out[-1].end:
            out[-1] = replace(out[-1], end=seg.start)
            if out[-1].end <= out[-1].start:
                out.pop()
        out.append(seg)
    return out


def _absorb_short(segs: list[Segment], cfg: SegmentationConfig) -> list[Segment]:
    out = list(segs)
    i = 0
    while i < len(out):
        seg = out[i]
        if seg.duration >= cfg.min_utterance_s:
            i += 1
            continue
        gap_prev = seg.start - out[i - 1].end if i > 0 else float("inf")
        gap_next = out[i + 1].start - seg.end if i + 1 < len(out) else float("inf")
        if min(gap_prev, gap_next) > cfg.merge_gap_s:
            del out[i]  # a lone blip: nothing to recognize
            continue
        if gap_prev <= gap_next:
            out[i - 1] = _join(out[i - 1], seg)
            del out[i]
            i -= 1  # the joined segment may still be short
            i = max(i, 0)
        else:
            out[i + 1] = _join(seg, out[i + 1])
            del out[i]
    return out


def _join(a: Segment, b: Segment) -> Segment:
    """a then b as one segment: speech if either part is, probability weighted by length."""
    prob = None
    if a.speech_prob is not None and b.speech_prob is not None:
        prob = (a.speech_prob * a.duration + b.speech_prob * b.duration) / (a.duration + b.duration)
    source: Source = "speech" if "speech" in (a.source, b.source) else "sound"
    return Segment(a.channel, a.start, b.end, source=source, speech_prob=prob)


def _split(
    seg: Segment, samples: np.ndarray, sample_rate: int, cfg: SegmentationConfig
) -> list[Segment]:
    pieces = []
    rest = seg
    while rest.duration > cfg.max_utterance_s:
        limit = rest.start + cfg.max_utterance_s
        # never leave a tail shorter than min_utterance_s
        hi = min(limit, rest.end - cfg.min_utterance_s)
        lo = min(hi, max(rest.start + cfg.min_utterance_s, limit - cfg.split_search_s))
        cut = lowest_energy_point(samples, lo, hi, sample_rate)
        pieces.append(replace(rest, end=cut))
        rest = replace(rest, start=cut)
    pieces.append(rest)
    return pieces


def _pad(segs: list[Segment], total: float, pad: float) -> list[Segment]:
    """Add ``pad`` each side; neighbours share a gap narrower than 2*pad at its middle."""
    out = []
    for i, seg in enumerate(segs):
        before = seg.start - segs[i - 1].end if i > 0 else float("inf")
        after = segs[i + 1].start - seg.end if i + 1 < len(segs) else float("inf")
        start = max(0.0, seg.start - min(pad, before / 2))
        end = min(total, seg.end + min(pad, after / 2))
        out.append(replace(seg, start=round(start, 4), end=round(end, 4)))
    return out
