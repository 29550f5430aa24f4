"""`recognizer.backend: onnx` in the config gives the same transcript as the torch backend."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from callsense.connectors.cli import app
from tests.conftest import FSMN_VAD_DIR, TESTDATA

pytestmark = pytest.mark.model
runner = CliRunner()


@pytest.mark.parametrize("quantize", ["none", "int8"])
def test_onnx_backend_from_config_matches_torch(
    fixed_model_dir: Path, tmp_path: Path, quantize: str
) -> None:
    exported = tmp_path / "onnx"
    made = runner.invoke(
        app, ["model", "export-onnx", str(fixed_model_dir), str(exported), "--quantize", quantize]
    )
    assert made.exit_code == 0, made.output
    cfg = tmp_path / "callsense.yaml"
    cfg.write_text(
        f"recognizer: {{model: {exported}, backend: onnx, quantize: {quantize}}}\n"
        f"vad: {{model: {FSMN_VAD_DIR}}}\n",
        encoding="utf-8",
    )
    wav = str(TESTDATA / "speechbrain_spk1_snt3.wav")
    onnx = runner.invoke(app, ["transcribe", "-c", str(cfg), wav, "-f", "jsonl", "--no-cache"])
    torch = runner.invoke(
        app, ["transcribe", "-m", str(fixed_model_dir), wav, "-f", "jsonl", "--no-cache"]
    )
    assert onnx.exit_code == 0 and torch.exit_code == 0, onnx.output + torch.output

    def fields(out: str) -> list[tuple]:
        recs = [json.loads(x) for x in out.splitlines() if x.startswith("{")]
        return [(r["start"], r["end"], r["raw"]) for r in recs]

    assert fields(onnx.stdout) == fields(torch.stdout) != []
