"""``analyze --engine ray``: an archive of recordings through Ray Data, resumable.

Two actor pools, each holding its models once, both thin drivers of the call session local
analyze drives (``pipeline.analyze``): transcribers (VAD + recognizer + the privacy guard)
and analyzers (policies, NLU, dialogue, TTS), which write the same per-call files. A
transcriber consults the result cache before it decodes a file and stores each guarded
transcript as soon as it is made, so a rerun after a crash
(driver killed, cluster lost) recognizes only the files that had no stored result: the
cache is the resume. The cache check runs in the actors, not the driver, because hashing
millions of files is work to spread too. Without a cache there is no resume.
"""

from __future__ import annotations

import json
import logging
import pickle
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from callsense.pipeline.config import CallsenseConfig
from callsense.pipeline.distributed.config import RayConfig, resolve_factory
from callsense.rules.model import Decision

__all__ = ["AnalyzeActor", "ArchiveReport", "TranscribeActor", "run_archive"]

log = logging.getLogger(__name__)


@dataclass(slots=True)
class ArchiveReport:
    """What the driver saw come back: summaries (no transcript text), failures, decisions."""

    summaries: list[dict[str, Any]] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)  # (file name, error type)
    decisions: list[Decision] = field(default_factory=list)


class TranscribeActor:
    """Ray Data actor: call paths in, pickled transcripts (or error records) out. Each goes
    through the transcription flow (the privacy guard) before it is cached or passed on."""

    def __init__(self, cfg: CallsenseConfig, factory: str | None, cache_dir: str | None) -> None:
        from callsense.pipeline.analyze import transcription_flow
        from callsense.pipeline.cache import ResultCache
        from callsense.pipeline.transcribe import Transcriber
        from callsense.pipeline.vad import build_vad

        self._cache = ResultCache(cache_dir) if cache_dir is not None else None
        self._flow = transcription_flow(cfg)
        recognizer = resolve_factory(factory)(cfg.recognizer)
        self._transcriber = Transcriber(cfg=cfg, vad=build_vad(cfg.vad), recognizer=recognizer)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, list[Any]]:
        from callsense.pipeline.analyze import analyze_file
        from callsense.pipeline.records import error_record

        transcripts: list[bytes] = []
        errors: list[str] = []
        for path, call_id in zip(batch["path"], batch["call_id"], strict=True):
            try:
                result = analyze_file(
                    Path(str(path)),
                    self._flow,
                    self._transcriber,
                    call_id=str(call_id),
                    cache=self._cache,
                    name=str(path),  # as `callsense analyze` names it: the path it was given
                )
            except Exception as exc:
                transcripts.append(b"")
                errors.append(json.dumps(error_record(str(call_id), str(path), exc)["error"]))
            else:
                transcripts.append(pickle.dumps(result.transcript))
                errors.append("")
        return {
            "path": [str(p) for p in batch["path"]],
            "call_id": [str(c) for c in batch["call_id"]],
            "transcript": transcripts,
            "error": errors,
        }


class AnalyzeActor:
    """Ray Data actor: transcripts in, the call's files written, summary + decisions out."""

    def __init__(self, cfg: CallsenseConfig, out_dir: str, with_tts: bool) -> None:
        from callsense.pipeline.analyze import FilesSink, build_flow

        self._flow = build_flow(cfg, with_tts=with_tts)
        self._out = Path(out_dir)
        self._files = FilesSink(self._out)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, list[str]]:
        from callsense.pipeline.analyze import write_failure_record

        summaries, decisions, errors = [], [], []
        for path, call_id, blob, error in zip(
            batch["path"], batch["call_id"], batch["transcript"], batch["error"], strict=True
        ):
            if error:
                write_failure_record(self._out, str(call_id), str(path), json.loads(str(error)))
                summaries.append("")
                decisions.append("[]")
                errors.append(str(error))
                continue
            result = self._flow.run(pickle.loads(bytes(blob)), sinks=(self._files,))
            summaries.append(json.dumps(result.summary, ensure_ascii=False))
            decisions.append(json.dumps([d.to_dict() for d in result.decisions]))
            errors.append("")
        return {
            "path": [str(p) for p in batch["path"]],
            "summary": summaries,
            "decisions": decisions,
            "error": errors,
        }


def run_archive(
    files: Sequence[Path],
    out_dir: Path,
    cfg: CallsenseConfig,
    ray_cfg: RayConfig,
    *,
    use_cache: bool = True,
    with_tts: bool = True,
) -> ArchiveReport:
    """Analyze ``files`` on the configured Ray cluster; outputs as ``callsense analyze``."""
    import ray
    import ray.data

    from callsense.pipeline.cache import default_cache_dir
    from callsense.pipeline.distributed.serve_recognizer import ensure_ray
    from callsense.pipeline.transcribe import call_id_for

    cache_dir = None
    if use_cache and cfg.cache.enabled:
        # resolved here: a worker's environment and home are not the driver's
        cache_dir = str(Path(cfg.cache.dir or default_cache_dir()).expanduser().resolve())
    else:
        log.warning("archive: result cache disabled; an interrupted run starts over")
    ensure_ray(ray_cfg)
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    out_dir = Path(out_dir).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    items = [{"path": str(Path(p).resolve()), "call_id": call_id_for(Path(p))} for p in files]
    settings = ray_cfg.archive
    ds = ray.data.from_items(items, override_num_blocks=max(1, min(len(items), 64)))
    ds = ds.map_batches(
        TranscribeActor,
        fn_constructor_kwargs={
            "cfg": cfg,
            "factory": ray_cfg.recognizer_factory,
            "cache_dir": cache_dir,
        },
        compute=ray.data.ActorPoolStrategy(size=settings.recognizer_actors),
        batch_size=settings.batch_size,
        num_cpus=settings.resources.num_cpus,
        num_gpus=settings.resources.num_gpus or None,
    )
    ds = ds.map_batches(
        AnalyzeActor,
        fn_constructor_kwargs={"cfg": cfg, "out_dir": str(out_dir), "with_tts": with_tts},
        compute=ray.data.ActorPoolStrategy(size=settings.analyzer_actors),
        batch_size=settings.batch_size,
        num_cpus=settings.analyzer_num_cpus,
    )
    report = ArchiveReport()
    order = {item["path"]: i for i, item in enumerate(items)}
    rows = sorted(ds.iter_rows(), key=lambda r: order.get(str(r["path"]), 0))
    for row in rows:
        if row["error"]:
            error = json.loads(str(row["error"]))
            report.failed.append((Path(str(row["path"])).name, str(error.get("type", "error"))))
            continue
        report.summaries.append(json.loads(str(row["summary"])))
        report.decisions.extend(Decision.from_dict(d) for d in json.loads(str(row["decisions"])))
    return report
