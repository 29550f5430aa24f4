"""The Ray CLI surface without a cluster: option checking and config errors."""

from __future__ import annotations

from pathlib import Path

import typer
from typer.testing import CliRunner

from callsense.connectors import cli_ray
from tests.conftest import TESTDATA

CLIP = TESTDATA / "ravdess_03-01-05-01-01-01-01.wav"


def _ray_cli() -> typer.Typer:
    app = typer.Typer()
    cli_ray.register(app)

    @app.callback()
    def _root() -> None:  # a group, so "ray" stays a subcommand
        pass

    return app


def test_unknown_engine_is_refused(tmp_path: Path) -> None:
    from callsense.connectors.cli import app

    result = CliRunner().invoke(
        app, ["analyze", str(CLIP), "--engine", "spark", "--out", str(tmp_path), "--no-tts"]
    )
    assert result.exit_code == 2
    assert "--engine must be local or ray (got 'spark')" in result.output
    assert not any(tmp_path.iterdir())


def test_serve_model_reports_ray_yaml_errors_with_line(tmp_path: Path) -> None:
    bad = tmp_path / "ray.yaml"
    bad.write_text("num_replicas: 2\nbatch: {max_batch_size: 4, linger: 1}\n")
    result = CliRunner().invoke(_ray_cli(), ["ray", "serve-model", "--ray-config", str(bad)])
    assert result.exit_code == 2
    assert "ray.yaml:2: batch.linger: unknown field" in result.output


def test_detach_needs_a_cluster_address(tmp_path: Path) -> None:
    local = tmp_path / "ray.yaml"
    local.write_text("num_replicas: 1\n")
    result = CliRunner().invoke(
        _ray_cli(), ["ray", "serve-model", "--ray-config", str(local), "--detach"]
    )
    assert result.exit_code == 2
    assert "--detach needs address" in result.output
