"""Audit trail and forgetting on a running service: redaction before storage, explain,
purge, and the retention job."""

from __future__ import annotations

import json
import time
from pathlib import Path

from typer.testing import CliRunner

from callsense.connectors.calls_store import CallStore
from callsense.connectors.cli import app
from callsense.connectors.outbox import Outbox
from callsense.connectors.retention import Purger
from callsense.connectors.scheduler import CallsenseScheduler
from callsense.connectors.storage import make_engine
from tests.service.conftest import Service

runner = CliRunner()
CARD = "4111 1111 1111 1111"


def _post(service: Service, call_id: str) -> dict:
    utterances = [
        {
            "call_id": call_id,
            "channel": 0,
            "speaker": "customer",
            "start": 2.0 * i,
            "end": 2.0 * i + 1.5,
            "raw": f"<|en|><|ANGRY|><|Speech|><|withitn|>my card is {CARD} turn {i}",
        }
        for i in range(3)
    ]
    with service.client() as c:
        r = c.post("/v1/calls", json={"call_id": call_id, "utterances": utterances})
        assert r.status_code == 202, r.text
    body = service.wait_call(call_id)
    assert body["status"] == "done", body
    return body


def test_posted_transcripts_are_redacted_before_they_are_stored(light_service: Service) -> None:
    body = _post(light_service, "trust-redact")
    stored = json.dumps(body["utterances"])
    assert CARD not in stored and "[CARD]" in stored
    rows = CallStore(light_service.runtime.engine).utterances("trust-redact")
    assert CARD not in json.dumps(rows)


def test_explain_prints_condition_and_evidence(light_service: Service) -> None:
    _post(light_service, "trust-explain")
    db = str(light_service.runtime.engine.url)
    result = runner.invoke(app, ["explain", "trust-explain", "--db", db])
    assert result.exit_code == 0, result.output
    out = result.output
    assert "angry-streak" in out and "escalate" in out
    assert '"consecutive": 3' in out and "default.yaml:" in out
    assert out.count("customer ANGRY Speech") == 3
    assert CARD not in out


def test_purge_removes_rows_and_the_stored_audio(light_service: Service, tmp_path: Path) -> None:
    _post(light_service, "trust-purge")
    runtime = light_service.runtime
    store = CallStore(runtime.engine)
    audio = runtime.audio_dir / "trust-purge.wav"
    audio.write_bytes(b"RIFF")
    with runtime.engine.begin() as conn:
        from callsense.connectors.calls_tables import calls_table

        conn.execute(
            calls_table.update()
            .where(calls_table.c.id == "trust-purge")
            .values(audio_path=str(audio))
        )
    db = str(runtime.engine.url)
    result = runner.invoke(
        app,
        ["purge", "--call", "trust-purge", "--db", db, "--data-dir", str(runtime.audio_dir.parent)],
    )
    assert result.exit_code == 0, result.output
    assert store.get("trust-purge") is None and store.utterances("trust-purge") == []
    assert not audio.exists()
    again = runner.invoke(app, ["purge", "--call", "trust-purge", "--db", db])
    assert again.exit_code == 1


def test_retention_job_purges_old_calls(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path}/r.db")
    store = CallStore(engine)
    from callsense.connectors.storage import create_schema

    create_schema(engine)
    audio_dir = tmp_path / "audio"
    audio_dir.mkdir()
    for call_id in ("old", "new"):
        (audio_dir / f"{call_id}.wav").write_bytes(b"x")
        store.create(call_id, kind="audio", audio_path=str(audio_dir / f"{call_id}.wav"))
    from callsense.connectors.calls_tables import calls_table

    with engine.begin() as conn:  # "old" was made 40 days ago
        conn.execute(
            calls_table.update()
            .where(calls_table.c.id == "old")
            .values(created_at=time.time() - 40 * 86400)
        )
    purger = Purger(engine, audio_dir=audio_dir)
    scheduler = CallsenseScheduler(
        Outbox(engine),
        retention_interval_s=0.2,
        retention_hooks=[lambda: purger.purge_older_than(30 * 86400)],
    )
    scheduler.start()
    try:
        deadline = time.monotonic() + 15
        while store.get("old") is not None and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        scheduler.shutdown()
    assert store.get("old") is None and not (audio_dir / "old.wav").exists()
    assert store.get("new") is not None and (audio_dir / "new.wav").exists()


def test_service_results_carry_the_audit_and_no_agent_emotion(light_service: Service) -> None:
    utterances = [
        {
            "call_id": "trust-audit",
            "channel": 1,
            "speaker": "agent",
            "start": 0.0,
            "end": 1.0,
            "raw": "<|en|><|SAD|><|Speech|><|withitn|>Hello.",
        },
        {
            "call_id": "trust-audit",
            "channel": 0,
            "speaker": "customer",
            "start": 1.5,
            "end": 2.5,
            "raw": "<|en|><|HAPPY|><|Speech|><|withitn|>Hi.",
        },
    ]
    with light_service.client() as c:
        assert (
            c.post(
                "/v1/calls", json={"call_id": "trust-audit", "utterances": utterances}
            ).status_code
            == 202
        )
    body = light_service.wait_call("trust-audit")
    assert body["status"] == "done", body
    agent, customer = body["utterances"]
    assert agent["emotion"] is None and customer["emotion"] == "HAPPY"
    audit = body["summary"]["audit"]
    assert len(audit["policy_hash"]) == 64 and audit["config_hash"] and audit["policies"]
