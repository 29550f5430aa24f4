"""``callsense bench accuracy``: does the fast backend hear what fp32 torch hears, on your calls?

Speed benchmarks run on random weights; only users with the real model and their own
labelled calls can check accuracy. Both recognizers hear exactly the same VAD segments
(decoding, VAD and segmentation run once per file), so per-segment tag agreement and the
text CER between them measure the backend alone. Against the user's references each
backend gets a CER (micro-averaged: all edits over all reference characters) and a tag
accuracy per file (the tag that covers most of the file's utterance time).

References and scoring: ``connectors.accuracy``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from callsense.connectors.accuracy import (
    REFERENCE_SUFFIXES,
    TAGS,
    Agreement,
    Reference,
    Score,
    cer_counts,
    file_tag,
    file_text,
    load_references,
    match_reference,
    score_file,
)
from callsense.connectors.cli_transcribe import ConfigOpt, ModelOpt, VadModelOpt
from callsense.connectors.console import (
    err_console,
    fail,
    find_audio,
    out_console,
    progress,
    setup_logging,
)
from callsense.core.errors import CallsenseError, InputError

__all__ = ["register"]

# --------------------------------------------------------------------------- command


def accuracy(
    paths: Annotated[
        list[Path],
        typer.Argument(
            help="Labelled calls: audio files, directories, or a reference TSV/JSONL "
            "(then every file it lists, relative to it)."
        ),
    ],
    fast_config: Annotated[
        Path,
        typer.Option(
            "--fast-config",
            help="YAML config whose recognizer section is the fast backend "
            "(e.g. backend: onnx, quantize: int8, model: EXPORTED_DIR).",
        ),
    ],
    reference: Annotated[
        Path | None,
        typer.Option(
            "--reference", "-r", help="References (TSV or JSONL: file, text, lang, emotion, event)."
        ),
    ] = None,
    model: ModelOpt = None,
    vad_model: VadModelOpt = None,
    config: ConfigOpt = None,
    json_out: Annotated[
        Path | None, typer.Option("--json", help="Also write the full report as JSON here.")
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Tag agreement and CER on your labelled calls: fp32 torch vs the fast backend.

    The baseline is the --config/--model recognizer forced to backend torch, quantize none;
    the fast one is --fast-config's recognizer section. VAD and segmentation come from
    --config and run once, so both backends hear the same segments. Transcript text is
    written only to the --json report, never to logs.
    """
    setup_logging(verbose)
    from callsense.connectors.appconfig import load_app_config
    from callsense.pipeline.config import load_config

    try:
        cfg = load_app_config(config, model=model, vad_model=vad_model)
        fast_cfg = load_config(fast_config, environ={})
        refs, files, base = _inputs(paths, reference)
    except CallsenseError as exc:
        fail(exc)
    base_rec = cfg.recognizer.model_copy(update={"backend": "torch", "quantize": "none"})
    cfg = cfg.model_copy(update={"recognizer": base_rec})
    if not files:
        fail("no audio files found in the given paths")
    report = _evaluate(cfg, fast_cfg.recognizer, files, refs, base)
    out_console.print(_table(report))
    if json_out is not None:
        json_out.write_text(json.dumps(report, ensure_ascii=False, indent=2) + "\n")
        err_console.print(f"report in {json_out}")


def _inputs(
    paths: list[Path], reference: Path | None
) -> tuple[dict[str, Reference], list[Path], Path | None]:
    refs: dict[str, Reference] = {}
    base: Path | None = None
    audio_args: list[Path] = []
    listed: list[Path] = []
    ref_files = [p for p in paths if p.is_file() and p.suffix.lower() in REFERENCE_SUFFIXES]
    if reference is not None:
        ref_files.insert(0, reference)
    for ref_file in ref_files:
        for row in load_references(ref_file):
            refs.setdefault(row.file, row)
            if ref_file in paths:
                listed.append(ref_file.parent / row.file)
        base = base or ref_file.parent
    for p in paths:
        if p not in ref_files:
            audio_args.append(p)
    missing = [p for p in listed if not p.is_file()]
    if missing:
        raise InputError(f"{missing[0]}: listed in the references but not found")
    files = list(dict.fromkeys([*listed, *find_audio(audio_args)]))
    return refs, files, base


def _evaluate(
    cfg: Any, fast: Any, files: list[Path], refs: dict[str, Reference], base: Path | None
) -> dict[str, Any]:
    from callsense.pipeline.audio import decode, speaker_for
    from callsense.pipeline.recognizer import build_recognizer
    from callsense.pipeline.transcribe import Transcriber, _clip, utterance_from
    from callsense.pipeline.vad import build_vad

    try:
        with err_console.status("loading models…"):
            recognizers = {
                "fp32": build_recognizer(cfg.recognizer),
                "fast": build_recognizer(fast),
            }
            transcriber = Transcriber(
                cfg=cfg, vad=build_vad(cfg.vad), recognizer=recognizers["fp32"]
            )
    except CallsenseError as exc:
        fail(exc)
    scores = {name: Score() for name in recognizers}
    agree = Agreement()
    per_file: list[dict[str, Any]] = []
    failed: list[dict[str, str]] = []
    with progress() as bar:
        task = bar.add_task("scoring", total=len(files))
        for path in files:
            bar.update(task, description=f"scoring {escape(path.name)}")
            try:
                audio = decode(path, cfg.audio)
                segments = transcriber.segments(audio)
                clips = [_clip(audio.channels[s.channel], s, audio.sample_rate) for s in segments]
                n = len(audio.channels)
                heard: dict[str, list[Any]] = {}
                for name, rec in recognizers.items():
                    results = rec.recognize(clips, language=cfg.recognizer.language)
                    heard[name] = [
                        utterance_from(
                            s,
                            r,
                            call_id=path.stem,
                            speaker=speaker_for(s.channel, n, cfg.audio),
                            cfg=cfg,
                        )
                        for s, r in zip(segments, results, strict=True)
                    ]
            except CallsenseError as exc:
                failed.append({"file": str(path), "error": str(exc)})
                bar.advance(task)
                continue
            for a, b in zip(heard["fp32"], heard["fast"], strict=True):
                agree.segments += 1
                for kind in TAGS:
                    agree.same_tag[kind] += getattr(a, kind) == getattr(b, kind)
                agree.same_text += a.text == b.text
                edits, chars = cer_counts(a.text, b.text)
                agree.edits += edits
                agree.fp32_chars += chars
            ref = match_reference(path, refs, base)
            row: dict[str, Any] = {"file": str(path), "segments": len(segments)}
            if ref is not None:
                row["reference"] = ref.model_dump(mode="json")
                for name in recognizers:
                    row[name] = score_file(scores[name], ref, heard[name])
            else:
                row["reference"] = None
                for name in recognizers:
                    row[name] = {"text": file_text(heard[name])} | {
                        k: file_tag(heard[name], k) for k in TAGS
                    }
            per_file.append(row)
            bar.advance(task)
    return {
        "backends": {
            name: {"model": rec.model_id, "backend": type(rec).__name__}
            for name, rec in recognizers.items()
        },
        "files": len(per_file),
        "failed": failed,
        "scores": {
            name: {
                "cer": s.cer,
                "ref_chars": s.ref_chars,
                "edits": s.edits,
                **{f"{k}_accuracy": s.accuracy(k) for k in TAGS},
                **{f"{k}_labelled": s.tag_total[k] for k in TAGS},
            }
            for name, s in scores.items()
        },
        "agreement": {
            "segments": agree.segments,
            **{k: agree.rate(k) for k in TAGS},
            "text_exact": agree.same_text / agree.segments if agree.segments else None,
            "cer_vs_fp32": agree.edits / agree.fp32_chars if agree.fp32_chars else None,
        },
        "per_file": per_file,
    }


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _table(report: dict[str, Any]) -> Table:
    table = Table(title="callsense bench accuracy", expand=False)
    for col in ("", "CER", "lang acc", "emotion acc", "event acc", "labelled (chars/tags)"):
        table.add_column(col)
    for name, s in report["scores"].items():
        labelled = f"{s['ref_chars']} / " + "/".join(str(s[f"{k}_labelled"]) for k in TAGS)
        table.add_row(
            name,
            _fmt(s["cer"]),
            *(_fmt(s[f"{k}_accuracy"]) for k in TAGS),
            labelled,
        )
    a = report["agreement"]
    table.add_row(
        f"fast vs fp32 ({a['segments']} segments)",
        _fmt(a["cer_vs_fp32"]),
        *(_fmt(a[k]) for k in TAGS),
        f"text identical: {_fmt(a['text_exact'])}",
    )
    models = "; ".join(f"{n}: {escape(b['model'])}" for n, b in report["backends"].items())
    table.caption = (
        f"{models}\n{report['files']} files scored, {len(report['failed'])} failed; CER = edits / "
        "reference characters (case, punctuation and spaces ignored); tag acc = the file's "
        "dominant tag is among the labelled ones"
    )
    return table


def register(app: typer.Typer) -> None:
    """Add the ``bench`` command group to the ``callsense`` app."""
    bench_app = typer.Typer(
        help="Measure the recognizer backends on your data.", no_args_is_help=True
    )
    bench_app.command("accuracy")(accuracy)
    app.add_typer(bench_app, name="bench")
