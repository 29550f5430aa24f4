"""``callsense keys``: keys land in the database ``serve`` uses, found the same way."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from callsense.connectors.auth import KeyStore
from callsense.connectors.cli import app
from callsense.connectors.storage import make_engine


def test_keys_follow_the_configs_database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # the fallback ./callsense.db must stay empty
    monkeypatch.delenv("CALLSENSE_DB_URL", raising=False)
    monkeypatch.delenv("CALLSENSE_CONFIG", raising=False)
    service_db = tmp_path / "service.db"
    config = tmp_path / "callsense.yaml"
    config.write_text(f"outbox:\n  db_url: sqlite:///{service_db}\n")
    runner = CliRunner()

    created = runner.invoke(app, ["keys", "create", "ops", "--config", str(config)])
    assert created.exit_code == 0, created.output
    key = created.stdout.strip().splitlines()[0]
    engine = make_engine(f"sqlite:///{service_db}")
    try:
        assert KeyStore(engine).verify(key) is not None  # where `serve -c callsense.yaml` looks
    finally:
        engine.dispose()
    assert not (tmp_path / "callsense.db").exists()

    monkeypatch.setenv("CALLSENSE_CONFIG", str(config))  # the same file, found through the env
    listed = runner.invoke(app, ["keys", "list"], env={"COLUMNS": "200"})
    assert listed.exit_code == 0 and "ops" in listed.stdout
    revoked = runner.invoke(app, ["keys", "revoke", "ops"])
    assert revoked.exit_code == 0, revoked.output
    other = tmp_path / "other.db"
    explicit = runner.invoke(app, ["keys", "list", "--db", f"sqlite:///{other}"])
    assert explicit.exit_code == 0 and "ops" not in explicit.stdout  # --db wins
