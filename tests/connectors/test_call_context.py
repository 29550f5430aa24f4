"""A live call's platform ids (``RouteContext``) are stored with the call: the calls store
keeps and updates them, older databases get the columns, the API shows them, and a
gateway's crash recovery routes the replayed decisions with them.

SQLite and PostgreSQL (``db_url``); the recovery runs a real service (uvicorn on
127.0.0.1, no models: the stored utterances are replayed) against a loopback server
playing Genesys Cloud's API.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import inspect, text

from callsense.connectors.app import create_app
from callsense.connectors.appconfig import AppConfig
from callsense.connectors.calls_store import CallStore
from callsense.connectors.endpoint import RouteContext
from callsense.connectors.platforms.genesys import GenesysTarget
from callsense.connectors.runtime import LIVE_RECOVERED, Runtime
from callsense.connectors.service_settings import ServiceSettings
from callsense.connectors.storage import create_schema, make_engine
from callsense.pipeline.config import CacheConfig
from callsense.pipeline.records import utterance_from_record
from tests.service.server import running, wait_ready

from .conftest import Receiver
from .helpers import ROUTE_ON_THREE_ANGRY

GENESYS = RouteContext(conversation_id="conv-9", participant_id="part-7")
TWILIO = RouteContext(call_sid="CA" + "7e" * 16)

ANGRY = "<|en|><|ANGRY|><|Speech|><|withitn|>This is absurd, I want a refund."
CALM = "<|en|><|NEUTRAL|><|Speech|><|withitn|>Thank you for waiting."


def _records(call_id: str, turns: int) -> list[dict[str, Any]]:
    """Angry customer turns, a calm agent between them (transcribe JSONL records)."""
    out = []
    for i in range(turns):
        t = 3.0 * i
        out.append({"call_id": call_id, "channel": 0, "speaker": "customer", "start": t,
                    "end": t + 2.0, "raw": ANGRY})  # fmt: skip
        out.append({"call_id": call_id, "channel": 1, "speaker": "agent", "start": t + 2.1,
                    "end": t + 3.0, "raw": CALM})  # fmt: skip
    return out


# --- the store ------------------------------------------------------------------------------


def test_the_store_keeps_and_updates_a_calls_platform_ids(db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        store = CallStore(engine)
        made = store.create("live-1", kind="live", status="running", context=TWILIO)
        assert made.context == TWILIO
        store.create("rec-1", kind="audio")
        assert (rec := store.get("rec-1")) is not None and rec.context == RouteContext()
        assert {r.id: r.context for r in store.list().items} == {
            "live-1": TWILIO,
            "rec-1": RouteContext(),
        }
        # a reconnect brings ids: those it has are stored, the others stay
        store.update_context("live-1", RouteContext(conversation_id="conv-2"))
        got = store.get("live-1")
        assert got is not None
        assert got.context == RouteContext(call_sid=TWILIO.call_sid, conversation_id="conv-2")
        store.update_context("live-1", RouteContext())  # nothing new: nothing changes
        assert store.get("live-1") == got
        store.finish("live-1", {"escalated": False}, duration_s=3.0)
        assert (done := store.get("live-1")) is not None and done.context == got.context
    finally:
        engine.dispose()


def test_an_older_calls_table_gets_the_id_columns_once(db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        with engine.begin() as conn:  # the calls table as callsense made it before the ids
            conn.execute(
                text(
                    """CREATE TABLE callsense_calls (id VARCHAR(128) PRIMARY KEY, status
                    VARCHAR(16) NOT NULL, kind VARCHAR(16) NOT NULL, policy VARCHAR(255),
                    requested_policy VARCHAR(64), language VARCHAR(16), source VARCHAR(255),
                    audio_path TEXT, created_at FLOAT NOT NULL, started_at FLOAT, finished_at
                    FLOAT, duration_s FLOAT, escalated BOOLEAN, top_priority VARCHAR(16),
                    utterance_count INTEGER NOT NULL, decision_count INTEGER NOT NULL, summary
                    TEXT, replies TEXT, error TEXT)"""
                )
            )
            conn.execute(
                text(
                    "INSERT INTO callsense_calls (id, status, kind, created_at, utterance_count,"
                    " decision_count) VALUES ('old', 'done', 'live', 1.0, 0, 0)"
                )
            )
        for _ in range(2):  # idempotent
            create_schema(engine)
        columns = {c["name"] for c in inspect(engine).get_columns("callsense_calls")}
        assert {"call_sid", "conversation_id", "participant_id", "contact_id"} <= columns
        store = CallStore(engine)
        assert (old := store.get("old")) is not None and old.context == RouteContext()
        store.update_context("old", GENESYS)
        assert (old := store.get("old")) is not None and old.context == GENESYS
    finally:
        engine.dispose()


# --- the service: the API, and a crash recovery's routes --------------------------------------


@pytest.fixture
def genesys() -> Iterator[Receiver]:
    api = Receiver()
    yield api
    api.stop()


def test_crash_recovery_routes_with_the_stored_ids_and_the_api_shows_them(
    db_url: str, tmp_path: Path, genesys: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A gateway died mid-call: its AudioHook call (stored under the session id, so the
    route's conversation and participant exist only as the call's stored ids) is replayed
    on restart and its route reaches the participant the live session would have routed."""
    monkeypatch.setenv("GENESYS_ACCESS_TOKEN", "gc-token")
    call_id = "5d1a6a7e-0c55-4b7b-9d43-3c1e2f0a9b10"
    engine = make_engine(db_url)
    try:
        store = CallStore(engine)
        store.create(call_id, kind="live", status="running", source="audiohook@gw-ctx",
                     language="en", context=GENESYS)  # fmt: skip
        for i, rec in enumerate(_records(call_id, 3)):
            store.add_utterance(call_id, utterance_from_record(rec, line=i))
        store.create("recording-1", kind="transcript", status="done", source="api")
    finally:
        engine.dispose()

    policy = tmp_path / "routing.yaml"
    policy.write_text(ROUTE_ON_THREE_ANGRY)
    target = GenesysTarget(name="genesys", kind="genesys", base_url=genesys.url)
    cfg = AppConfig(cache=CacheConfig(enabled=False), policies=[policy], routing=[target])
    app = create_app(
        cfg,
        db_url=db_url,
        load_models=False,
        settings=ServiceSettings(
            data_dir=tmp_path / "data",
            delivery_interval_s=0.2,
            scheduler=False,
            gateway_id="gw-ctx",
        ),
    )
    runtime: Runtime = app.state.runtime
    key = runtime.keys.create("ctx")
    with running(app) as base:
        wait_ready(base)
        deadline = time.monotonic() + 30
        while not genesys.requests:  # the replay's route, through the outbox
            assert time.monotonic() < deadline, "the recovered call's route never left"
            time.sleep(0.05)
        headers = {"Authorization": f"Bearer {key}"}
        detail = httpx.get(f"{base}/v1/calls/{call_id}", headers=headers).json()
        listed = httpx.get(f"{base}/v1/calls", headers=headers).json()["items"]

    (patch,) = genesys.requests
    assert patch.method == "PATCH"
    assert patch.path == "/api/v2/conversations/calls/conv-9/participants/part-7/attributes"
    assert json.loads(patch.body)["attributes"]["callsense_queue"] == "supervisors"

    assert detail["status"] == "done" and detail["error"] == LIVE_RECOVERED
    assert [d["rule"] for d in detail["decisions"]] == ["angry-to-supervisors"]
    ids = ("conversation_id", "participant_id", "call_sid", "contact_id")
    assert {k: detail[k] for k in ids} == {
        "conversation_id": "conv-9",
        "participant_id": "part-7",
        "call_sid": None,
        "contact_id": None,
    }
    by_id = {item["id"]: {k: item[k] for k in ids} for item in listed}
    assert by_id[call_id] == {k: detail[k] for k in ids}
    assert by_id["recording-1"] == dict.fromkeys(ids)
