"""Conversation dynamics: the definitions a call's summary and the policy conditions share.

The summary (``pipeline.dynamics``, whole call) and the live conditions (``rules.dynamics``,
one utterance at a time) both read these thresholds, interval rules and the temperature
model, so a number a supervisor sees and the number a policy tested cannot drift apart.
``docs/dynamics.md`` states every rule in prose. Times are audio seconds from the call's
start; an interval is a ``(start, end)`` pair and a *union* a sorted list of disjoint ones
(touching intervals merged).
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = [
    "EMOTION_HEAT",
    "INTERRUPTION_MIN_OVERLAP_S",
    "LAUGHTER_HEAT",
    "OVERTALK_MIN_S",
    "TEMPERATURE_COOLING_HALF_LIFE_S",
    "TEMPERATURE_STEP_HALF_LIFE_S",
    "HeatWatch",
    "Interval",
    "Temperature",
    "add_interval",
    "counts_as_overtalk",
    "heat_of",
    "interrupts",
    "is_hold",
    "is_talk",
    "measure",
    "overlap",
    "overtalk_spans",
    "step_weight",
]

# An utterance interrupts only if it overlaps the other side's speech this long: shorter
# overlaps are backchannels ("mm-hm", "right") and the 0.1 s VAD padding of each side.
INTERRUPTION_MIN_OVERLAP_S = 1.0
# Both sides speaking for less than this is turn-taking seen through the VAD's padding
# (0.1 s before and after every utterance), not overtalk: such spans are not counted.
OVERTALK_MIN_S = 0.25
# One customer utterance of this much speech moves the temperature halfway to its heat.
TEMPERATURE_STEP_HALF_LIFE_S = 3.0
# Without new evidence the temperature halves toward neutral (0) every this many seconds.
TEMPERATURE_COOLING_HALF_LIFE_S = 60.0

# Heat of a customer utterance by emotion: +1 heated ... -1 pleased; 0 is calm evidence.
EMOTION_HEAT: dict[str, float] = {
    "ANGRY": 1.0,
    "DISGUSTED": 0.8,
    "SAD": 0.6,
    "FEARFUL": 0.6,
    "NEUTRAL": 0.0,
    "SURPRISED": 0.0,
    "OTHER": 0.0,
    "HAPPY": -0.8,
}
LAUGHTER_HEAT = -1.0  # laughter (speech or a sound segment) outweighs its emotion tag

_EPS = 1e-9  # float sums of times land a hair off exact thresholds

Interval = tuple[float, float]


def is_talk(source: str, event: str | None) -> bool:
    """Speech counts as talk; a sound, or speech tagged as music (hold), does not."""
    return source == "speech" and event != "BGM"


def is_hold(event: str | None) -> bool:
    """Hold time is what SenseVoice tags as music (BGM), whoever's channel carries it."""
    return event == "BGM"


def heat_of(speaker: str, source: str, emotion: str | None, event: str | None) -> float | None:
    """What one utterance says about the customer's temperature; None: it says nothing
    (not the customer, hold music, a sound that is not laughter, no emotion known)."""
    if speaker != "customer" or event == "BGM":
        return None
    if event == "Laughter":
        return LAUGHTER_HEAT
    if source != "speech" or emotion is None:
        return None
    return EMOTION_HEAT.get(emotion)  # EMO_UNKNOWN: None


def step_weight(duration: float) -> float:
    """How far one utterance moves the temperature toward its heat (0..1): longer speech
    is more evidence, and a blip cannot swing the score."""
    return 1.0 - 0.5 ** (max(0.0, duration) / TEMPERATURE_STEP_HALF_LIFE_S)


def _cooled(value: float, seconds: float) -> float:
    return value * 0.5 ** (max(0.0, seconds) / TEMPERATURE_COOLING_HALF_LIFE_S)


@dataclass(slots=True)
class HeatWatch:
    """Since when the temperature has been above ``threshold`` without a break.

    Exact between updates: cooling crosses a positive threshold downward (or a negative one
    upward) at a computable time, so "above T for X seconds" does not wait for the next
    utterance to notice that the run ended."""

    threshold: float
    since: float | None = None  # start of the run in progress after the last update

    def run_start(self, temp: Temperature, t: float) -> float | None:
        """Start of the above-threshold run at time ``t``; None if not above at ``t``."""
        cross = _crossing(temp.value, self.threshold)
        if temp.value > self.threshold:
            if cross is not None and temp.at + cross <= t:
                return None  # cooled down through the threshold
            return self.since
        if self.threshold < 0.0 and cross is not None and temp.at + cross < t:
            return temp.at + cross  # a negative score warmed back above a negative threshold
        return None

    def seconds_above(self, temp: Temperature, t: float) -> float:
        start = self.run_start(temp, t)
        return 0.0 if start is None else max(0.0, t - start)


@dataclass(slots=True)
class Temperature:
    """The customer's temperature in [-1, 1]: an exponential average of the heat of their
    utterances (weighted by ``step_weight``), cooling toward 0 between them. Updated at
    each utterance's end, in the order utterances end (the order a live call hears them)."""

    value: float = 0.0
    at: float = 0.0

    def now(self, t: float) -> float:
        """The temperature at time ``t`` (not before the last update)."""
        return _cooled(self.value, t - self.at)

    def feel(
        self, heat: float, start: float, end: float, watches: Iterable[HeatWatch] = ()
    ) -> None:
        """One customer utterance with this heat, heard over [start, end]; each watch's
        run goes on if the score was above its threshold just before and still is."""
        t = max(end, self.at)
        runs = [(w, w.run_start(self, t)) for w in watches]
        current = self.now(t)
        self.value = current + step_weight(end - start) * (heat - current)
        self.at = t
        for watch, before in runs:
            above = self.value > watch.threshold
            watch.since = (t if before is None else before) if above else None


def _crossing(value: float, threshold: float) -> float | None:
    """Seconds of cooling after which ``value`` equals ``threshold`` (None: never)."""
    if threshold == 0.0 or (value > 0.0) != (threshold > 0.0) or abs(value) < abs(threshold):
        return None
    return TEMPERATURE_COOLING_HALF_LIFE_S * math.log2(value / threshold)


# --- unions of intervals ----------------------------------------------------------------


def add_interval(union: list[Interval], start: float, end: float) -> None:
    """Insert [start, end] into a sorted disjoint union, merging what it touches."""
    i = bisect_right(union, (start, math.inf))
    if i > 0 and union[i - 1][1] >= start:
        i -= 1
    j = i
    while j < len(union) and union[j][0] <= end:
        start = min(start, union[j][0])
        end = max(end, union[j][1])
        j += 1
    union[i:j] = [(start, end)]


def measure(union: Iterable[Interval]) -> float:
    return sum((b - a for a, b in union), 0.0)


def overlap(union: list[Interval], start: float, end: float) -> float:
    """Length of [start, end] covered by the union."""
    total = 0.0
    for a, b in union:
        if a >= end:
            break
        if b > start:
            total += min(b, end) - max(a, start)
    return total


def _strictly_inside(union: list[Interval], t: float) -> bool:
    i = bisect_right(union, (t, math.inf)) - 1
    return i >= 0 and union[i][0] < t < union[i][1]


def interrupts(start: float, end: float, other: list[Interval]) -> bool:
    """An utterance over [start, end] interrupts a party whose speech is ``other``: it
    starts while that party is speaking (and had started before it) and overlaps that
    party's speech for at least ``INTERRUPTION_MIN_OVERLAP_S``."""
    return (
        _strictly_inside(other, start)
        and overlap(other, start, end) >= INTERRUPTION_MIN_OVERLAP_S - _EPS
    )


def overtalk_spans(parties: Iterable[list[Interval]]) -> list[Interval]:
    """Maximal spans where two or more parties speak at once, each at least
    ``OVERTALK_MIN_S`` long (shorter ones are the VAD's padding at a turn change)."""
    edges: list[tuple[float, int]] = []
    for union in parties:
        for a, b in union:
            if b > a:
                edges.append((a, 1))
                edges.append((b, -1))
    edges.sort()  # at one instant ends (-1) come before starts: touching is not overlapping
    spans: list[Interval] = []
    active = 0
    opened = 0.0
    for t, step in edges:
        if step > 0:
            active += 1
            if active == 2:
                opened = t
        else:
            if active == 2:
                if spans and spans[-1][1] == opened:  # one party took over from another
                    spans[-1] = (spans[-1][0], t)
                else:
                    spans.append((opened, t))
            active -= 1
    return [span for span in spans if counts_as_overtalk(span)]


def counts_as_overtalk(span: Interval) -> bool:
    """Whether a maximal overtalk span is long enough to count (``OVERTALK_MIN_S``)."""
    return span[1] - span[0] >= OVERTALK_MIN_S - _EPS
