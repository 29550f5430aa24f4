"""``callsense model export-onnx``: turn a downloaded SenseVoiceSmall into the fast ONNX backend."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import typer

__all__ = ["register"]


def register(app: typer.Typer) -> None:
    """Add the ``model`` command group to the ``callsense`` app."""
    model_app = typer.Typer(help="Model files: export SenseVoice to ONNX.", no_args_is_help=True)
    model_app.command("export-onnx")(export_onnx)
    app.add_typer(model_app, name="model")


def export_onnx(
    model_dir: Annotated[
        Path, typer.Argument(help="SenseVoiceSmall dir: model.pt, config.yaml, tokenizer, am.mvn")
    ],
    out_dir: Annotated[Path, typer.Argument(help="directory to write the ONNX model into")],
    quantize: Annotated[
        str, typer.Option(help="none: fp32 only; int8: also signed int8 weights (fastest)")
    ] = "none",
) -> None:
    """Export MODEL_DIR to ONNX in OUT_DIR, for `backend: onnx` in the recognizer config.

    Needs the fp32 checkpoint once (about 3 GB of memory for SenseVoiceSmall); the ONNX
    backend then loads only the exported file.
    """
    from callsense.core.errors import InputError

    if quantize not in ("none", "int8"):
        raise typer.BadParameter("choose none or int8", param_hint="--quantize")
    mode: Literal["none", "int8"] = "int8" if quantize == "int8" else "none"
    from callsense.pipeline.sensevoice_onnx import export_onnx as run_export

    try:
        written = run_export(model_dir, out_dir, quantize=mode)
    except InputError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    size_mb = written.stat().st_size / 1e6
    typer.echo(f"wrote {written} ({size_mb:.0f} MB)")
