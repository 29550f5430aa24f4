"""``callsense analyze``: every stage for each call, files per call, a table for the batch."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from callsense.connectors.batch_table import summary_table
from callsense.connectors.cli_ray import RayConfigOpt, analyze_on_ray
from callsense.connectors.cli_transcribe import ConfigOpt, ModelOpt, VadModelOpt
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


def analyze(
    paths: Annotated[list[Path], typer.Argument(help="Audio files or directories of them.")],
    policy: Annotated[
        list[Path] | None,
        typer.Option("--policy", "-p", help="Policy file(s), instead of the configured ones."),
    ] = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="Output directory.")] = Path(
        "callsense-out"
    ),
    model: ModelOpt = None,
    vad_model: VadModelOpt = None,
    config: ConfigOpt = None,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Ignore the result cache.")] = False,
    no_tts: Annotated[bool, typer.Option("--no-tts", help="Skip reply audio.")] = False,
    deadline: Annotated[
        float | None,
        typer.Option("--deadline", help="Seconds to wait for webhook deliveries before exiting."),
    ] = None,
    engine: Annotated[
        str, typer.Option("--engine", help="local (this process) or ray (a Ray cluster).")
    ] = "local",
    ray_config: RayConfigOpt = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Analyze calls: transcript, policy decisions, intents, dialogue replies and their audio.

    Writes OUT/<call_id>/{utterances.jsonl, decisions.jsonl, replies.jsonl, summary.json,
    replies/*.wav}. Decisions go to the configured webhooks before the command exits.
    """
    setup_logging(verbose)
    from callsense.connectors.appconfig import load_app_config
    from callsense.pipeline.analyze import FilesSink, analyze_file, build_flow, write_failure
    from callsense.pipeline.cache import ResultCache
    from callsense.pipeline.summary import CallResult
    from callsense.pipeline.transcribe import build_transcriber, call_id_for

    try:
        cfg = load_app_config(config, model=model, vad_model=vad_model)
        if policy:
            cfg = cfg.model_copy(update={"policies": list(policy)})
        flow = build_flow(cfg, with_tts=not no_tts)
    except CallsenseError as exc:
        fail(exc)
    files = find_audio(paths)
    if not files:
        fail("no audio files found in the given paths")
    if engine not in ("local", "ray"):
        fail(f"--engine must be local or ray (got {engine!r})")
    if engine == "ray":
        analyze_on_ray(
            files,
            out,
            cfg,
            ray_config=ray_config,
            use_cache=not no_cache,
            with_tts=not no_tts,
            deadline=deadline,
        )
        return
    try:
        with err_console.status("loading models…"):
            transcriber = build_transcriber(cfg)
    except CallsenseError as exc:
        fail(exc)
    cache = ResultCache(cfg.cache.dir) if cfg.cache.enabled and not no_cache else None
    files_sink = FilesSink(out)

    results: list[CallResult] = []
    failed: list[tuple[str, str]] = []
    with progress() as bar:
        task = bar.add_task("analyzing", total=len(files))
        for path in files:
            call_id = call_id_for(path)
            bar.update(task, description=f"analyzing {escape(path.name)}")
            try:
                result = analyze_file(
                    path,
                    flow,
                    transcriber,
                    call_id=call_id,
                    cache=cache,
                    sinks=(files_sink,),
                    name=str(path),  # the user's own files: errors say where they are
                )
            except Exception as exc:
                error = write_failure(out, call_id, str(path), exc)
                failed.append((path.name, str(error["type"])))
                err_console.print(f"[red]failed[/] {escape(path.name)}: {escape(str(exc))}")
            else:
                results.append(result)
            bar.advance(task)

    summaries = [r.summary for r in results]
    out_console.print(summary_table(summaries, failed, title="callsense analyze"))
    if cfg.delivery_endpoints():
        _deliver(results, cfg, deadline)
    err_console.print(f"outputs in {out}/")
    if failed:
        raise typer.Exit(1)


def _deliver(results: list[object], cfg: object, deadline: float | None) -> None:
    from callsense.connectors.appconfig import AppConfig
    from callsense.connectors.cli_webhooks import print_report
    from callsense.connectors.outbox import deliver_decisions
    from callsense.pipeline.summary import CallResult

    assert isinstance(cfg, AppConfig)
    decisions = [d for r in results if isinstance(r, CallResult) for d in r.decisions]
    report = deliver_decisions(decisions, cfg.webhooks_config(), deadline_s=deadline)
    print_report(report, err_console)


def register(app: typer.Typer) -> None:
    app.command("analyze")(analyze)
