"""``callsense transcribe``: calls in, one tagged utterance per line out."""

from __future__ import annotations

import json
import sys
from enum import StrEnum
from pathlib import Path
from typing import IO, Annotated

import typer
from rich.markup import escape

from callsense.connectors.console import (
    err_console,
    fail,
    find_audio,
    out_console,
    progress,
    setup_logging,
)
from callsense.core.errors import CallsenseError

__all__ = ["register"]


class OutputFormat(StrEnum):
    text = "text"
    jsonl = "jsonl"


ConfigOpt = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="YAML config (default: $CALLSENSE_CONFIG or built-in)."),
]
ModelOpt = Annotated[
    str | None,
    typer.Option(
        "--model",
        "-m",
        help="SenseVoice model: hub id or local directory (default: $CALLSENSE_MODEL, "
        "else iic/SenseVoiceSmall).",
    ),
]
VadModelOpt = Annotated[
    str | None,
    typer.Option("--vad-model", help="FSMN-VAD hub id or local directory ($CALLSENSE_VAD_MODEL)."),
]


def transcribe(
    paths: Annotated[list[Path], typer.Argument(help="Audio files or directories of them.")],
    model: ModelOpt = None,
    vad_model: VadModelOpt = None,
    config: ConfigOpt = None,
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Write JSONL records to this file.")
    ] = None,
    fmt: Annotated[
        OutputFormat, typer.Option("--format", "-f", help="stdout format when --out is not given.")
    ] = OutputFormat.text,
    language: Annotated[
        str | None, typer.Option("--language", "-l", help="auto|zh|en|yue|ja|ko")
    ] = None,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Ignore the result cache.")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log progress (INFO).")] = False,
) -> None:
    """Transcribe calls: speaker, times, language, emotion, event and text per utterance.

    One broken file gives an error record for that file and the batch goes on; the exit code
    is 1 if any file failed.
    """
    setup_logging(verbose)
    from callsense.connectors.appconfig import load_app_config
    from callsense.pipeline.analyze import analyze_file, transcription_flow
    from callsense.pipeline.cache import ResultCache
    from callsense.pipeline.records import error_record, record_from_utterance
    from callsense.pipeline.transcribe import build_transcriber, call_id_for

    try:
        cfg = load_app_config(config, model=model, vad_model=vad_model)
        if language is not None:
            cfg = cfg.model_copy(
                update={
                    "recognizer": cfg.recognizer.model_validate(
                        {**cfg.recognizer.model_dump(), "language": language}
                    )
                }
            )
    except CallsenseError as exc:
        fail(exc)
    except ValueError as exc:
        fail(str(exc))
    files = find_audio(paths)
    if not files:
        fail("no audio files found in the given paths")
    try:
        with err_console.status("loading models…"):
            transcriber = build_transcriber(cfg)
            flow = transcription_flow(cfg)  # the privacy guard: redaction, emotion gate
    except CallsenseError as exc:
        fail(exc)
    cache = ResultCache(cfg.cache.dir) if cfg.cache.enabled and not no_cache else None

    sink: IO[str] | None = None
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        sink = out.open("w", encoding="utf-8")
    elif fmt is OutputFormat.jsonl:
        sink = sys.stdout
    failures = 0
    utterances = 0
    try:
        with progress() as bar:
            task = bar.add_task("transcribing", total=len(files))
            for path in files:
                call_id = call_id_for(path)
                bar.update(task, description=f"transcribing {escape(path.name)}")
                try:
                    result = analyze_file(
                        path, flow, transcriber, call_id=call_id, cache=cache, name=str(path)
                    )
                except Exception as exc:
                    failures += 1
                    _emit_error(sink, error_record(call_id, str(path), exc), bar)
                else:
                    transcript = result.transcript
                    utterances += len(transcript.utterances)
                    if sink is not None:
                        for utt in transcript.utterances:
                            sink.write(json.dumps(record_from_utterance(utt), ensure_ascii=False))
                            sink.write("\n")
                        sink.flush()
                    else:
                        _print_text(transcript, bar)
                bar.advance(task)
    finally:
        if out is not None and sink is not None:
            sink.close()
    err_console.print(
        f"{len(files) - failures} of {len(files)} call(s) transcribed, "
        f"{utterances} utterance(s), {failures} failed" + (f"; records in {out}" if out else "")
    )
    if failures:
        raise typer.Exit(1)


def _emit_error(sink: IO[str] | None, record: dict[str, object], bar: object) -> None:
    if sink is not None:
        sink.write(json.dumps(record, ensure_ascii=False) + "\n")
        sink.flush()
    err = record["error"]
    assert isinstance(err, dict)
    err_console.print(
        f"[red]failed[/] {escape(str(record['file']))}: {escape(str(err['message']))}"
    )


def _fmt_time(seconds: float) -> str:
    minutes, secs = divmod(seconds, 60.0)
    return f"{int(minutes):02d}:{secs:05.2f}"


def _print_text(transcript: object, bar: object) -> None:
    from callsense.pipeline.model import CallTranscript

    assert isinstance(transcript, CallTranscript)
    out_console.print(f"# {transcript.call_id} ({transcript.duration or 0:.1f} s)", markup=False)
    for u in transcript.utterances:
        line = (
            f"[{_fmt_time(u.start)}-{_fmt_time(u.end)}] {u.speaker:<8} {u.source:<6} "
            f"{u.lang or '-':<8} {u.emotion or '-':<11} {u.event or '-':<12} {u.text}"
        )
        out_console.print(line, markup=False, highlight=False)


def register(app: typer.Typer) -> None:
    app.command("transcribe")(transcribe)
