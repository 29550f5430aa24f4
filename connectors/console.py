"""Shared CLI plumbing: consoles, logging set-up, finding audio files, error exits."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import TextIO

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from callsense.core.errors import CallsenseError, ConfigError

__all__ = [
    "AUDIO_SUFFIXES",
    "StderrHandler",
    "err_console",
    "fail",
    "find_audio",
    "out_console",
    "progress",
    "setup_logging",
]

# Results go to stdout (so `--format jsonl | jq` works); progress and messages to stderr.
out_console = Console(soft_wrap=True, highlight=False)
err_console = Console(stderr=True, highlight=False, soft_wrap=True)

AUDIO_SUFFIXES = frozenset(
    {
        ".wav",
        ".mp3",
        ".ogg",
        ".oga",
        ".opus",
        ".flac",
        ".m4a",
        ".aac",
        ".wma",
        ".webm",
        ".mka",
        ".amr",
        ".au",
        ".aiff",
        ".aif",
        ".gsm",
        ".ulaw",
        ".alaw",
        ".caf",
        ".mp4",
    }
)


class StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes each record to ``sys.stderr`` as it is then, not as it was at set-up: a command
    run in-process (a test's ``CliRunner``, an app embedding the CLI) has its stderr swapped
    back and closed afterwards, while threads it started (a server's) may go on logging."""

    @property  # type: ignore[override]
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, _value: TextIO) -> None:
        """``StreamHandler.__init__`` sets a stream; this handler has none of its own."""


def setup_logging(verbose: bool = False) -> None:
    """Configure logging before funasr is imported (it calls basicConfig at INFO itself)."""
    handler = StderrHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING, handlers=[handler], force=True
    )


def find_audio(paths: Iterable[Path]) -> list[Path]:
    """Expand directories (recursively, sorted) to their audio files; keep files as given.

    A file named on the command line is taken whatever its suffix (ffmpeg decides); in a
    directory only known audio suffixes are picked up. A missing path is an error.
    """
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found.extend(
                sorted(
                    p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES
                )
            )
        elif path.exists():
            found.append(path)
        else:
            fail(f"{path}: no such file or directory")
    return found


def progress() -> Progress:
    return Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err_console,
        transient=False,
    )


def fail(message: str | CallsenseError, code: int = 2) -> None:
    """Print an error the user can act on (no traceback) and exit."""
    problems = message.problems if isinstance(message, ConfigError) else [str(message)]
    for problem in problems:
        err_console.print(Text.assemble(("error: ", "bold red"), problem))
    raise typer.Exit(code)
