"""``callsense analyze``'s engine: build the stages from config, run a call, summarize it.

The per-call outputs (``utterances.jsonl``, ``decisions.jsonl``, ``summary.json``,
``replies/``) are written here so the CLI, the API and tests produce the same files.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from callsense.core.errors import ConfigError
from callsense.pipeline.cache import config_fingerprint
from callsense.pipeline.compliance import compliance_notes, log_startup
from callsense.pipeline.config import CallsenseConfig
from callsense.pipeline.dialogue import DialogueManager
from callsense.pipeline.model import CallTranscript
from callsense.pipeline.nlu import IntentClassifier
from callsense.pipeline.orchestrator import (
    CallRun,
    DialogueStage,
    NluStage,
    Orchestrator,
    RulesStage,
    SpokenReply,
    StageError,
    TtsStage,
)
from callsense.pipeline.policy_stage import PolicyStage
from callsense.pipeline.records import record_from_utterance
from callsense.pipeline.tts import FallbackTts
from callsense.rules.engine import PolicyEngine
from callsense.rules.lint import emotion_uses
from callsense.rules.model import Decision

__all__ = [
    "PRIORITY_ORDER",
    "CallResult",
    "build_orchestrator",
    "summarize",
    "write_call_outputs",
]

PRIORITY_ORDER = ("low", "normal", "high", "urgent")


def build_orchestrator(cfg: CallsenseConfig, *, with_tts: bool = True) -> Orchestrator:
    """NLU -> rules -> dialogue -> TTS, each loaded once; config errors surface here."""
    log_startup(cfg.compliance)
    classifier = IntentClassifier.load(cfg.intents)
    engine = PolicyEngine.load([str(p) for p in cfg.policies], backend=cfg.policy_engine)
    if not cfg.compliance.emotion:
        problems = emotion_uses(engine.policy_set)
        if problems:
            engine.close()
            raise ConfigError(problems[0], problems=problems)
    dialogue = DialogueManager.load(cfg.dialogue, intents=classifier.intent_names)
    stages = [
        NluStage(classifier),
        RulesStage(PolicyStage(engine)),
        DialogueStage(dialogue, disclosure=cfg.compliance.disclosure),
    ]
    if with_tts:
        stages.append(TtsStage(FallbackTts.from_config(cfg.tts)))
    audit = {
        "policy_hash": engine.policy_hash,
        "policies": [str(p) for p in cfg.policies],
        "config_hash": config_fingerprint(cfg.decisions_fingerprint()),
        "model": cfg.recognizer.model,
    }
    return Orchestrator(stages, audit=audit)


@dataclass(frozen=True, slots=True)
class CallResult:
    """Everything analyze produced for one call."""

    transcript: CallTranscript
    decisions: tuple[Decision, ...]
    replies: tuple[SpokenReply, ...]
    errors: tuple[StageError, ...]
    summary: dict[str, Any]

    @classmethod
    def from_run(
        cls,
        transcript: CallTranscript,
        run: CallRun,
        cfg: CallsenseConfig,
        audit: dict[str, Any] | None = None,
    ) -> CallResult:
        decisions = tuple(d for t in run.turns for d in t.decisions)
        replies = tuple(r for t in run.turns for r in t.replies)
        errors = tuple(e for t in run.turns for e in t.errors)
        intents = Counter(t.intent.name for t in run.turns if t.intent is not None)
        summary = summarize(transcript, decisions, replies, errors, intents, cfg)
        summary["audit"] = dict(run.audit if audit is None else audit)
        return cls(transcript, decisions, replies, errors, summary)


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


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_call_outputs(result: CallResult, out_dir: Path) -> Path:
    """Write one call's files under ``out_dir/<call_id>/``; returns that directory."""
    call_dir = out_dir / result.transcript.call_id
    lines = [
        json.dumps(record_from_utterance(u), ensure_ascii=False)
        for u in result.transcript.utterances
    ]
    _atomic_write(call_dir / "utterances.jsonl", "".join(f"{x}\n" for x in lines).encode())
    _atomic_write(
        call_dir / "decisions.jsonl", "".join(f"{d.to_json()}\n" for d in result.decisions).encode()
    )
    reply_rows = []
    for i, item in enumerate(result.replies):
        name = None
        if item.audio is not None:
            name = f"replies/{i:02d}-{item.reply.template}.wav"
            _atomic_write(call_dir / name, item.audio)
        reply_rows.append({**item.record(), "audio": name})
    _atomic_write(
        call_dir / "replies.jsonl",
        "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in reply_rows).encode(),
    )
    _atomic_write(
        call_dir / "summary.json",
        (json.dumps(result.summary, ensure_ascii=False, indent=2) + "\n").encode(),
    )
    return call_dir
