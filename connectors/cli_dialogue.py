"""``callsense dialogue test FILES…`` and ``callsense intents classify TEXT``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from callsense.core.errors import ConfigError

__all__ = ["register"]

_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_INTENTS = _ROOT / "configs" / "intents.yaml"

dialogue_app = typer.Typer(help="Dialogue flows: run YAML dialogue tests.", no_args_is_help=True)
intents_app = typer.Typer(help="NLU intents: try the configured hooks.", no_args_is_help=True)


@dialogue_app.command("test")
def dialogue_test(
    files: Annotated[list[Path], typer.Argument(help="YAML dialogue test files")],
    dialogue: Annotated[
        Path | None, typer.Option(help="flow to test (default: each file's dialogue:)")
    ] = None,
    intents: Annotated[
        Path | None, typer.Option(help="intents config (default: each file's intents:)")
    ] = None,
) -> None:
    """Run dialogue tests; exit 1 if any fails, 2 if a file is misconfigured."""
    from callsense.pipeline.dialogue.testing import run_test_file

    out = Console(highlight=False)
    err = Console(stderr=True, highlight=False)
    passed = failed = 0
    broken = False
    for path in files:
        try:
            results = run_test_file(path, dialogue=dialogue, intents=intents)
        except ConfigError as exc:
            broken = True
            for problem in exc.problems:
                err.print(f"[red]error[/red] {problem}", markup=True, soft_wrap=True)
            continue
        for r in results:
            where = f"{r.file}:{r.line}" if r.line else r.file
            if r.passed:
                passed += 1
                out.print(f"[green]PASS[/green] {where} {r.name}", soft_wrap=True)
            else:
                failed += 1
                out.print(f"[red]FAIL[/red] {where} {r.name}", soft_wrap=True)
                for line in r.diff:
                    out.print(f"  {line}", markup=False, soft_wrap=True)
    out.print(f"{passed} passed, {failed} failed")
    if broken:
        raise typer.Exit(2)
    if failed:
        raise typer.Exit(1)


@intents_app.command("classify")
def intents_classify(
    text: Annotated[str, typer.Argument(help="utterance text, as SenseVoice would write it")],
    lang: Annotated[str | None, typer.Option(help="language code (zh en yue ja ko)")] = None,
    config: Annotated[Path, typer.Option(help="intents config")] = DEFAULT_INTENTS,
) -> None:
    """Print the intent the configured hook chain finds (exit 1: none, 2: bad config)."""
    from callsense.pipeline.nlu.chain import IntentClassifier

    err = Console(stderr=True, highlight=False)
    try:
        nlu = IntentClassifier.load(config)
    except ConfigError as exc:
        for problem in exc.problems:
            err.print(f"error {problem}", markup=False, soft_wrap=True)
        raise typer.Exit(2) from None
    try:
        result = nlu.classify_text(text, lang, call_id="cli")
    finally:
        nlu.close()
    for e in result.errors:
        err.print(f"hook {e.hook} failed ({e.kind}): {e.message}", markup=False, soft_wrap=True)
    if result.intent is None:
        typer.echo("no intent")
        raise typer.Exit(1)
    i = result.intent
    typer.echo(f"{i.name}\t{i.confidence:.2f}\t{i.hook}")


def register(app: typer.Typer) -> None:
    app.add_typer(dialogue_app, name="dialogue")
    app.add_typer(intents_app, name="intents")
