"""Fixtures for the bench tools: the fixed test model's ONNX export and a fast config."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def fixed_onnx_dir(fixed_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from callsense.pipeline.sensevoice_onnx import export_onnx

    out = tmp_path_factory.mktemp("fixed-onnx")
    export_onnx(fixed_model_dir, out, quantize="int8")
    return out


@pytest.fixture(scope="session")
def fast_config(fixed_onnx_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("fast-config") / "fast.yaml"
    path.write_text(
        f"recognizer:\n  model: {fixed_onnx_dir}\n  backend: onnx\n  quantize: int8\n",
        encoding="utf-8",
    )
    return path
