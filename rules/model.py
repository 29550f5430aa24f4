"""What goes into a policy session and what comes out of it: small frozen records.

``Observation`` is one utterance (or sound) of one call as the rules see it; ``Decision`` is
one action a rule took, with the utterances that made it fire. Times are audio seconds from
the start of the call, never wall-clock time, so a replayed call decides like the live one.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from callsense.core.wire import UtteranceFields

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

    @classmethod
    def of(cls, utt: UtteranceFields, seq: int, intent: str | None = None) -> Observation:
        """The rules' view of one utterance (the wire record or the pipeline's ``Utterance``),
        built here only, so a replay, a policy test and a live call are read alike."""
        c = utt.confidence
        return cls(
            call_id=utt.call_id, seq=seq, start=utt.start, end=utt.end, speaker=utt.speaker,
            channel=utt.channel, source=utt.source, lang=utt.lang, emotion=utt.emotion,
            event=utt.event, text=utt.text or "", lang_confidence=c.lang,
            emotion_confidence=c.emotion, event_confidence=c.event, intent=intent,
        )  # fmt: skip


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

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Evidence:
        return cls(
            int(data["seq"]), float(data["start"]), float(data["end"]), str(data["speaker"]),
            data.get("emotion"), data.get("event"),
        )  # fmt: skip

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

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Decision:
        """A decision read back from ``to_dict`` (a job store, a Ray worker's JSON)."""
        return cls(
            call_id=str(data["call_id"]),
            policy=str(data.get("policy", "")),
            rule=str(data["rule"]),
            action=str(data["action"]),
            params=dict(data.get("params") or {}),
            at=float(data["at"]),
            evidence=tuple(Evidence.from_dict(e) for e in data.get("evidence") or ()),
            policy_hash=str(data.get("policy_hash", "")),
        )

    def to_json(self) -> str:
        """One JSON object on one line (the ``decisions.jsonl`` format)."""
        return json.dumps(self.to_dict(), ensure_ascii=False, sort_keys=False)
