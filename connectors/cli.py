"""The ``callsense`` command line: one Typer app, each command group in its own module."""

from __future__ import annotations

import typer

__all__ = ["app", "main"]

app = typer.Typer(
    name="callsense",
    help="Listen to customer-service calls with SenseVoice and act on what is heard.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _register_commands() -> None:
    """Each command module exposes ``register(app)``; the list is explicit, no import magic."""
    from callsense.connectors import (
        cli_analyze,
        cli_bench,
        cli_dialogue,
        cli_model,
        cli_policy,
        cli_ray,
        cli_serve,
        cli_stats,
        cli_transcribe,
        cli_trust,
        cli_tts,
        cli_webhooks,
    )

    for module in (
        cli_transcribe,
        cli_analyze,
        cli_model,
        cli_dialogue,
        cli_policy,
        cli_webhooks,
        cli_tts,
        cli_serve,
        cli_stats,
        cli_bench,
        cli_trust,
        cli_ray,
    ):
        module.register(app)


_register_commands()


def main() -> None:
    app()


if __name__ == "__main__":
    main()
