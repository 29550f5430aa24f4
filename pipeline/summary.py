"""What one call came to: its transcript, decisions, replies, errors and summary.

``summarize`` turns a call into numbers (no transcript text): what supervisors,
dashboards and ``summary.json`` read. The call session builds a ``CallResult`` at its end.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

from callsense.core.vocab import SPEAKERS
from callsense.pipeline.compliance import compliance_notes, emotion_allowed
from callsense.pipeline.config import CallsenseConfig
from callsense.pipeline.dynamics import call_dynamics
from callsense.pipeline.model import CallTranscript
from callsense.pipeline.stages import SpokenReply, StageError
from callsense.rules.model import Decision

__all__ = ["PRIORITY_ORDER", "CallResult", "summarize"]

PRIORITY_ORDER = ("low", "normal", "high", "urgent")


@dataclass(frozen=True, slots=True)
class CallResult:
    """Everything analyze produced for one call."""

    transcript: CallTranscript
    decisions: tuple[Decision, ...]
    replies: tuple[SpokenReply, ...]
    errors: tuple[StageError, ...]
    summary: dict[str, Any]


def summarize(
    transcript: CallTranscript,
    decisions: tuple[Decision, ...],
    replies: tuple[SpokenReply, ...],
    errors: tuple[StageError, ...],
    intents: Counter[str],
    cfg: CallsenseConfig,
) -> dict[str, Any]:
    """The call in numbers (no transcript text): what supervisors and dashboards read."""
    talk: Counter[str] = Counter()
    langs: Counter[str] = Counter()
    emotions: Counter[str] = Counter()
    bgm = 0.0
    for u in transcript.utterances:
        if u.event == "BGM":
            bgm += u.duration
            continue
        if u.source == "speech":
            talk[u.speaker] += u.duration
            if u.lang and u.lang != "nospeech":
                langs[u.lang] += u.duration
        if u.emotion:
            emotions[f"{u.speaker}:{u.emotion}"] += 1
    escalations = [d for d in decisions if d.action == "escalate"]
    marks = Counter(str(d.params.get("kind", "")) for d in decisions if d.action == "mark")
    positive = marks.get("satisfaction", 0)
    negative = marks.get("dissatisfaction", 0) + len(escalations)
    priorities = [str(d.params.get("priority", "normal")) for d in escalations]
    top = max(priorities, key=PRIORITY_ORDER.index, default=None) if priorities else None
    emotion_speakers = frozenset(s for s in SPEAKERS if emotion_allowed(s, cfg.compliance))
    dynamics = call_dynamics(transcript, emotion_speakers=emotion_speakers)
    return {
        "call_id": transcript.call_id,
        "source": transcript.source,
        "duration_s": transcript.duration,
        "channels": transcript.channels,
        "utterances": len(transcript.utterances),
        "talk_time_s": {k: round(v, 3) for k, v in sorted(talk.items())},
        "languages_s": {k: round(v, 3) for k, v in langs.most_common()},
        "emotions": dict(sorted(emotions.items())),
        "skipped_bgm_s": round(bgm, 3),
        "gaps": [g.record() for g in transcript.gaps],  # time the platform did not stream
        "dynamics": dynamics.record(),  # docs/dynamics.md
        "escalated": bool(escalations),
        "escalations": [
            {"rule": d.rule, "priority": d.params.get("priority"), "at": d.at} for d in escalations
        ],
        "top_priority": top,
        "satisfaction": {
            "marks": positive,
            "negative": negative,
            # share of positive signals among all satisfaction signals; null without any
            "score": round(positive / (positive + negative), 3) if positive + negative else None,
        },
        "intents": dict(intents.most_common()),
        "decisions": len(decisions),
        "replies": len(replies),
        "compliance": compliance_notes(cfg.compliance),
        "errors": [
            {"stage": e.stage, "kind": e.kind, "message": e.message, "at": e.at} for e in errors
        ],
    }
