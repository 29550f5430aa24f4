"""The call's dynamics as a policy session sees them: one observation at a time.

The dynamics conditions (``overtalk``, ``interruptions``, ``temperature``) test numbers
about the call so far, not about one utterance. A ``DynamicsTracker`` lives in the
``PolicySession`` (state there, not in ``Observation``): every road a call takes into the
rules (live, a recording, a replay, a YAML policy test) feeds the session the same
observations, so every road computes the same numbers without the pipeline's help. The
definitions are ``callsense.core.dynamics``, the ones the call summary uses.

Utterances arrive in the order they end. An overlap is known once both utterances are in,
so an interruption by a short utterance inside a longer one of the other side counts when
the longer one ends (the moment a live call can know it); after the last utterance the
counts equal the summary's. Memory is bounded: talk is remembered for the longest window a
condition uses plus ``REMEMBER_S`` (an utterance longer than that, which segmentation's
``max_utterance_s`` of 15 s rules out, would only be matched against its last part).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from callsense.core.dynamics import (
    HeatWatch,
    Interval,
    Temperature,
    add_interval,
    counts_as_overtalk,
    heat_of,
    interrupts,
    is_talk,
)
from callsense.rules.compiler import Feature
from callsense.rules.model import Observation

__all__ = ["REMEMBER_S", "DynamicsTracker"]

REMEMBER_S = 120.0  # how far back a late utterance may still overlap remembered talk


@dataclass(slots=True)
class _Talk:
    start: float
    end: float
    party: tuple[int, str]  # (channel, speaker): who is talking, even on a shared channel
    speaker: str
    counted: bool = False  # already counted as an interruption


class DynamicsTracker:
    """Overtalk, interruptions and temperature of one call, updated per observation."""

    __slots__ = (
        "_features",
        "_heat",
        "_horizon",
        "_interruptions",
        "_now",
        "_overtalk",
        "_parties",
        "_talk",
        "_talks",
        "_temp",
        "_watches",
    )

    def __init__(self, features: Sequence[Feature]) -> None:
        self._features = tuple(features)
        kinds = {f.kind for f in features}
        self._talk = bool(kinds & {"overtalk", "interruptions"})
        self._heat = bool(kinds & {"temperature", "hot_for"})
        windows = [f.window for f in features if f.window is not None]
        self._horizon = max(windows, default=0.0) + REMEMBER_S
        self._now = 0.0
        self._parties: dict[tuple[int, str], list[Interval]] = {}
        self._talks: list[_Talk] = []
        self._overtalk: list[Interval] = []  # union of instants two or more parties spoke
        self._interruptions: list[tuple[float, str]] = []  # (start, speaker) of each
        self._temp = Temperature()
        self._watches = {
            f.threshold: HeatWatch(f.threshold)
            for f in features
            if f.kind == "hot_for" and f.threshold is not None
        }

    def observe(self, obs: Observation) -> list[float]:
        """Take the next observation; the features' values right after it, in order."""
        if obs.end > self._now:
            self._now = obs.end
        if self._heat:
            heat = heat_of(obs.speaker, obs.source, obs.emotion, obs.event)
            if heat is not None:
                self._temp.feel(heat, obs.start, obs.end, self._watches.values())
        if self._talk and is_talk(obs.source, obs.event) and obs.end > obs.start:
            self._add_talk(obs)
        return [self._value(f) for f in self._features]

    def _add_talk(self, obs: Observation) -> None:
        party = (obs.channel, obs.speaker)
        start, end = obs.start, obs.end
        for other, union in self._parties.items():  # what others said over the new talk
            if other != party:
                for a, b in union:
                    if a < end and b > start:
                        add_interval(self._overtalk, max(a, start), min(b, end))
        add_interval(self._parties.setdefault(party, []), start, end)
        new = _Talk(obs.start, obs.end, party, obs.speaker)
        self._talks.append(new)
        # only talk touching the new utterance can have become an interruption now
        for talk in self._talks:
            if talk.counted or talk.end < new.start or talk.start > new.end:
                continue
            for other, union in self._parties.items():
                if other != talk.party and interrupts(talk.start, talk.end, union):
                    talk.counted = True
                    self._interruptions.append((talk.start, talk.speaker))
                    break
        self._forget(self._now - self._horizon)

    def _forget(self, before: float) -> None:
        if self._talks[0].end >= before:
            return
        self._talks = [t for t in self._talks if t.end >= before]
        for union in (*self._parties.values(), self._overtalk):
            while union and union[0][1] < before:
                union.pop(0)
        self._interruptions = [i for i in self._interruptions if i[0] >= before]

    def _value(self, feature: Feature) -> float:
        now = self._now
        if feature.kind == "overtalk":
            assert feature.window is not None
            since = now - feature.window
            return sum(
                min(b, now) - max(a, since)
                for a, b in self._overtalk
                if b > since and counts_as_overtalk((a, b))
            )
        if feature.kind == "interruptions":
            assert feature.window is not None
            since = now - feature.window
            by = feature.speakers
            return float(
                sum(1 for t, s in self._interruptions if t >= since and (by is None or s in by))
            )
        if feature.kind == "temperature":
            return self._temp.now(now)
        assert feature.threshold is not None
        return self._watches[feature.threshold].seconds_above(self._temp, now)
