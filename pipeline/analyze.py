"""Batch calls: build the flow from config, run a recording through it, write its files.

``build_flow`` loads NLU -> rules -> dialogue -> TTS once; ``analyze_file`` is the batch
driver of a ``CallSession`` (transcriber output in, or the result cache's copy); the
per-call outputs (``utterances.jsonl``, ``decisions.jsonl``, ``summary.json``,
``replies/``) are written by ``FilesSink`` so the CLI, the Ray archive and tests produce
the same files.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from callsense.core.errors import ConfigError
from callsense.pipeline.cache import ResultCache, cache_key, config_fingerprint
from callsense.pipeline.compliance import log_startup
from callsense.pipeline.config import CallsenseConfig
from callsense.pipeline.dialogue import DialogueManager
from callsense.pipeline.events import CallEvent, EndEvent
from callsense.pipeline.nlu import IntentClassifier
from callsense.pipeline.policy_stage import PolicyStage
from callsense.pipeline.privacy import PrivacyGuard
from callsense.pipeline.records import error_record, record_from_utterance
from callsense.pipeline.session import CallFlow, EventSink
from callsense.pipeline.stages import DialogueStage, NluStage, RulesStage, Stage, TtsStage
from callsense.pipeline.summary import CallResult
from callsense.pipeline.transcribe import Transcriber, call_id_for
from callsense.pipeline.tts import FallbackTts
from callsense.rules.engine import PolicyEngine
from callsense.rules.lint import emotion_uses

__all__ = [
    "FilesSink",
    "analyze_file",
    "build_flow",
    "transcription_flow",
    "write_call_outputs",
    "write_failure",
    "write_failure_record",
]

log = logging.getLogger(__name__)


def build_flow(cfg: CallsenseConfig, *, with_tts: bool = True) -> CallFlow:
    """NLU -> rules -> dialogue -> TTS, each loaded once; config errors surface here."""
    log_startup(cfg.compliance)
    guard = PrivacyGuard(cfg)  # a missing encryption key fails here, at start-up
    classifier = IntentClassifier.load(cfg.intents)
    engine = PolicyEngine.load([str(p) for p in cfg.policies], backend=cfg.policy_engine)
    if not cfg.compliance.emotion:
        problems = emotion_uses(engine.policy_set)
        if problems:
            engine.close()
            raise ConfigError(problems[0], problems=problems)
    dialogue = DialogueManager.load(cfg.dialogue, intents=classifier.intent_names)
    stages: list[Stage] = [
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
    return CallFlow(tuple(stages), cfg, guard, audit)


def transcription_flow(cfg: CallsenseConfig) -> CallFlow:
    """No stages, only the privacy guard: ``callsense transcribe`` and the Ray archive's
    transcribe actors, whose transcripts are stored before any policy runs."""
    return CallFlow((), cfg, PrivacyGuard(cfg), {"model": cfg.recognizer.model})


def analyze_file(
    path: Path,
    flow: CallFlow,
    transcriber: Transcriber,
    *,
    call_id: str | None = None,
    cache: ResultCache | None = None,
    sinks: tuple[EventSink, ...] = (),
    name: str | None = None,
) -> CallResult:
    """One recording through ``flow``. The cache holds guarded transcripts (redacted, as
    everything stored), keyed by the file, the model and the transcript's settings.
    ``name``: what errors and the summary call the file (default: its name, no directory)."""
    call_id = call_id or call_id_for(path)
    key = None
    if cache is not None:
        key = cache_key(path, transcriber.recognizer.model_id, flow.cfg.results_fingerprint())
        hit = cache.get(key, call_id=call_id)
        if hit is not None:
            log.info("call %s: result cache hit", call_id)
            return flow.run(hit, sinks=sinks)
    transcript = transcriber.transcribe_file(path, call_id=call_id, name=name)
    result = flow.run(transcript, sinks=sinks)
    if cache is not None and key is not None:
        cache.put(key, result.transcript)
    return result


@dataclass(frozen=True, slots=True)
class FilesSink:
    """Writes a call's files under ``out_dir/<call_id>/`` when it ends."""

    out_dir: Path

    def __call__(self, event: CallEvent) -> None:
        if isinstance(event, EndEvent):
            write_call_outputs(event.result, self.out_dir)


def write_failure(out_dir: Path, call_id: str, source: str, exc: BaseException) -> dict[str, Any]:
    """The summary of a call that could not be read (the error record, no transcript)."""
    error = error_record(call_id, source, exc)["error"]
    write_failure_record(out_dir, call_id, source, error)
    return dict(error)


def write_failure_record(out_dir: Path, call_id: str, source: str, error: dict[str, Any]) -> None:
    summary = {"call_id": call_id, "source": source, "errors": [error]}
    _atomic_write(
        out_dir / call_id / "summary.json", (json.dumps(summary, indent=2) + "\n").encode()
    )


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
