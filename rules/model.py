"""What goes into a policy session and what comes out of it: small frozen records.

``Observation`` is one utterance (or sound) of one call as the rules see it; ``Decision`` is
one action a rule took, with the utterances that made it fire. Times are audio seconds from
the start of the call, never wall-clock time, so a replayed call decides like the live one.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Decision", "Evidence", "Observation"]


@dataclass(frozen=True, slots=True)
class Observation:
    """One utterance or sound segment of a call, already tagged by the recognizer.

    ``seq`` is the utterance's index in the call; confidences are the tag probabilities
    (``None``: not measured). ``intent`` is filled by NLU hooks when they run first.
    """

    call_id: str
    seq: int
    start: float
    end: float
    speaker: str = "customer"
    channel: int = 0
    source: str = "speech"
    lang: str | None = None
    emotion: str | None = None
    event: str | None = None
    text: str = ""
    lang_confidence: float | None = None
    emotion_confidence: float | None = None
    event_confidence: float | None = None
    intent: str | None = None


@dataclass(frozen=True, slots=True)
class Evidence:
    """A reference to an utterance that satisfied a rule (no text: decisions carry no speech)."""

    seq: int
    start: float
    end: float
    speaker: str
    emotion: str | None
    event: str | None

    @classmethod
    def of(cls, obs: Observation) -> Evidence:
        return cls(obs.seq, obs.start, obs.end, obs.speaker, obs.emotion, obs.event)

    def to_dict(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "start": self.start,
            "end": self.end,
            "speaker": self.speaker,
            "emotion": self.emotion,
            "event": self.event,
        }


@dataclass(frozen=True, slots=True)
class Decision:
    """One action of one rule for one call; ``at`` is the audio time the rule completed."""

    call_id: str
    policy: str
    rule: str
    action: str
    params: dict[str, Any] = field(hash=False)
    at: float
    evidence: tuple[Evidence, ...]
    policy_hash: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "call_id": self.call_id,
            "policy": self.policy,
            "rule": self.rule,
            "action": self.action,
            "params": dict(self.params),
            "at": self.at,
            "evidence": [e.to_dict() for e in self.evidence],
            "policy_hash": self.policy_hash,
        }

    def to_json(self) -> str:
        """One JSON object on one line (the ``decisions.jsonl`` format)."""
        return json.dumps(self.to_dict(), ensure_ascii=False, sort_keys=False)
