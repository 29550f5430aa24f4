"""``callsense tts say``: speak one line with the configured engine chain and write the file."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

__all__ = ["register"]


def register(app: typer.Typer) -> None:
    """Add the ``tts`` command group to the ``callsense`` app."""
    tts_app = typer.Typer(help="Text to speech: the reply voices.", no_args_is_help=True)
    tts_app.command("say")(say)
    app.add_typer(tts_app, name="tts")


def say(
    text: Annotated[str, typer.Argument(help="what to say")],
    out: Annotated[Path, typer.Option("--out", "-o", help="WAV file to write")] = Path("reply.wav"),
    lang: Annotated[str, typer.Option(help="language: en, zh, yue, ja, ko")] = "en",
    engine: Annotated[
        list[str] | None,
        typer.Option(help="engine(s) to use, in order (edge, piper, espeak); default: config"),
    ] = None,
    telephony: Annotated[
        bool, typer.Option("--telephony", help="8 kHz G.711 μ-law instead of 16 kHz PCM")
    ] = False,
    config: Annotated[
        Path | None, typer.Option(help="YAML file with the tts settings (top level or tts:)")
    ] = None,
    cache: Annotated[bool, typer.Option("--cache/--no-cache", help="use the reply cache")] = True,
) -> None:
    """Synthesize TEXT and write it to --out (16 kHz 16-bit mono WAV, or μ-law with --telephony)."""
    from callsense.core.errors import InputError, RetryableError
    from callsense.pipeline.tts import FallbackTts, OutputFormat, TtsConfig, load_tts_config

    try:
        cfg = load_tts_config(config) if config is not None else TtsConfig()
        if engine:
            by_name: dict[str, object] = {e.engine: e for e in cfg.engines}
            unknown = [n for n in engine if n not in {"edge", "piper", "espeak"}]
            if unknown:
                raise typer.BadParameter(
                    f"unknown engine {unknown[0]!r}; choose edge, piper or espeak",
                    param_hint="--engine",
                )
            picked = [by_name.get(n, n) for n in engine]
            cfg = TtsConfig.model_validate({"engines": picked, "cache": cfg.cache.model_dump()})
        if not cache:
            cfg = cfg.model_copy(update={"cache": cfg.cache.model_copy(update={"enabled": False})})
        fmt = OutputFormat.MULAW8K if telephony else OutputFormat.WAV16K
        result = FallbackTts.from_config(cfg).save(text, lang, out, fmt)
    except InputError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    except RetryableError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    for failure in result.failures:
        typer.echo(f"fell back: {failure}", err=True)
    codec = "pcm_mulaw 8 kHz" if telephony else "pcm_s16le 16 kHz"
    source = "cache" if result.cached else "synthesized"
    typer.echo(
        f"wrote {out} ({result.duration_s:.2f} s, {codec}, engine {result.engine}, "
        f"voice {result.voice}, {source})"
    )
