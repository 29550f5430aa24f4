"""One call in progress as the wall shows it, kept up to date one event at a time.

The live engine computes the call's dynamics once, when the call ends; the wall needs them
while it goes on, so ``CallView`` folds each utterance in as it arrives, with the same
definitions (``callsense.core.dynamics``): the customer's temperature steps and cools as
``docs/dynamics.md`` says, talk is the union of a speaker's talk utterances and the talk
ratio their share of all talk. The utterances are the guarded ones the call stores (agent
emotions removed, text redacted), so the wall shows nothing the call's record does not.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from callsense.connectors.wall.alerts import PRIORITIES
from callsense.core.dynamics import (
    Interval,
    Temperature,
    add_interval,
    heat_of,
    is_talk,
    measure,
)
from callsense.pipeline.model import Utterance
from callsense.rules.model import Decision

__all__ = ["SPARK_POINTS", "CallView"]

SPARK_POINTS = 60  # temperature points kept for the sparkline (the latest)
TEXT_CHARS = 280  # of the last utterance, enough for a glance
SETTLE_S = 120.0  # talk older than this cannot overlap new talk any more: summed, forgotten
_NO_EMOTION = (None, "EMO_UNKNOWN")


@dataclass(slots=True)
class _Talk:
    """One speaker's talk: the recent union, and the measure of what was forgotten."""

    recent: list[Interval] = field(default_factory=list)
    settled_s: float = 0.0

    def add(self, start: float, end: float) -> None:
        add_interval(self.recent, start, end)
        while len(self.recent) > 1 and self.recent[0][1] < end - SETTLE_S:
            a, b = self.recent.pop(0)
            self.settled_s += b - a

    @property
    def seconds(self) -> float:
        return self.settled_s + measure(self.recent)


@dataclass(slots=True)
class CallView:
    """What the wall knows of one call in progress."""

    call_id: str
    protocol: str
    policy: str | None  # the stored policy it runs alone; None: the active set
    language: str
    started_at: float = field(default_factory=time.time)
    position: float = 0.0  # audio seconds heard so far (the latest utterance end)
    utterances: int = 0
    decisions: int = 0
    policies: set[str] = field(default_factory=set)  # that fired decisions
    top_priority: str | None = None
    queue: str | None = None  # the latest route decision's
    emotions: dict[str, str] = field(default_factory=dict)  # speaker -> latest emotion heard
    talk: dict[str, _Talk] = field(default_factory=dict)
    temperature: Temperature = field(default_factory=Temperature)
    points: deque[tuple[float, float]] = field(default_factory=lambda: deque(maxlen=SPARK_POINTS))
    last: dict[str, Any] | None = None

    def hear(self, u: Utterance) -> None:
        """Fold in one utterance (they come in the order they end)."""
        self.utterances += 1
        self.position = max(self.position, u.end)
        if u.emotion not in _NO_EMOTION and u.source == "speech":
            self.emotions[u.speaker] = str(u.emotion)
        if is_talk(u.source, u.event) and u.end > u.start:
            self.talk.setdefault(u.speaker, _Talk()).add(u.start, u.end)
        heat = heat_of(u.speaker, u.source, u.emotion, u.event)
        if heat is not None:
            self.temperature.feel(heat, u.start, u.end)
            self.points.append((round(self.temperature.at, 2), round(self.temperature.value, 3)))
        self.last = {
            "speaker": u.speaker,
            "text": u.text[:TEXT_CHARS],
            "emotion": u.emotion,
            "event": u.event,
            "start": round(u.start, 2),
            "end": round(u.end, 2),
        }

    def decide(self, d: Decision) -> None:
        self.decisions += 1
        self.position = max(self.position, d.at)
        self.policies.add(d.policy)
        if d.action == "escalate":
            p = str(d.params.get("priority", "normal"))
            top = self.top_priority
            if p in PRIORITIES and (top is None or PRIORITIES.index(p) > PRIORITIES.index(top)):
                self.top_priority = p
        elif d.action == "route" and "queue" in d.params:
            self.queue = str(d.params["queue"])

    def record(self) -> dict[str, Any]:
        """As the wall's WebSocket sends it."""
        talk = {s: t.seconds for s, t in self.talk.items()}
        total = sum(talk.values())
        speakers = {
            s: {
                "emotion": self.emotions.get(s),
                "talk_s": round(talk.get(s, 0.0), 2),
                "talk_ratio": round(talk[s] / total, 3) if total > 0 and s in talk else None,
            }
            for s in sorted(set(talk) | set(self.emotions))
        }
        policies = sorted(self.policies | ({self.policy} if self.policy else set()))
        return {
            "call_id": self.call_id,
            "protocol": self.protocol,
            "policy": self.policy,
            "policies": policies,
            "language": self.language,
            "started_at": self.started_at,
            "position": round(self.position, 2),
            "utterances": self.utterances,
            "decisions": self.decisions,
            "escalated": self.top_priority is not None,
            "top_priority": self.top_priority,
            "queue": self.queue,
            "speakers": speakers,
            "temperature": {
                "now": round(self.temperature.now(self.position), 3),
                "points": [list(p) for p in self.points],
            },
            "last": self.last,
        }
