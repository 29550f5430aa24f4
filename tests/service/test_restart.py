"""``kill -9`` of a real ``callsense serve`` with posted calls still queued: a restart
finishes every one of them, with its decisions and webhooks, and what waited on disk
meanwhile was already redacted (issue 19)."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.live.gateway import Gateway, stop
from tests.service.conftest import SECRET, webhook_receiver
from tests.service.test_api import ANGRY, CALM

pytestmark = [pytest.mark.model, pytest.mark.slow]

CARD = "4111 1111 1111 1111"  # Luhn-valid: redaction turns it into [CARD]
KEPT = [f"kept-{i}" for i in range(5)]


def _angry_call(call_id: str) -> dict[str, Any]:
    """Three angry customer turns (the default policy escalates at the third), one of them
    reading out a card number."""
    angry_card = ANGRY.replace("I want a refund.", f"my card is {CARD}.")
    raws = [ANGRY, CALM, angry_card, CALM, ANGRY]
    return {
        "call_id": call_id,
        "utterances": [
            {"channel": i % 2, "speaker": ("customer", "agent")[i % 2], "start": 3.0 * i,
             "end": 3.0 * i + 2.0, "raw": raw}
            for i, raw in enumerate(raws)
        ],
    }  # fmt: skip


def _long_call(call_id: str, n: int = 100_000) -> dict[str, Any]:
    """The most utterances a posted call may hold: the single worker runs it for seconds."""
    return {
        "call_id": call_id,
        "utterances": [
            {"channel": 0, "speaker": "customer", "start": float(i), "end": i + 0.5,
             "text": "Okay."}
            for i in range(n)
        ],
    }  # fmt: skip


def _status(gw: Gateway, call_id: str) -> dict[str, Any]:
    return httpx.get(f"{gw.base}/v1/calls/{call_id}", headers=gw.headers, timeout=30).json()


def _stored_inputs(db_file: Path) -> dict[str, str]:
    with sqlite3.connect(db_file) as conn:
        return dict(conn.execute("SELECT call_id, transcript FROM callsense_call_inputs"))


def test_calls_queued_at_a_kill_9_are_all_finished_after_the_restart(
    tmp_path: Path, keyed_model_dir: Path
) -> None:
    with webhook_receiver(SECRET) as box:
        config = tmp_path / "callsense.yaml"
        config.write_text(
            f"webhooks:\n  - name: tickets\n    url: {box.base_url}/ok\n"
            f"    secret: {SECRET}\n    actions: [escalate]\n",
            encoding="utf-8",
        )
        gw = Gateway(tmp_path / "gw", keyed_model_dir)
        server = gw.start("--config", str(config))
        try:
            with httpx.Client(base_url=gw.base, headers=gw.headers, timeout=120) as c:
                assert c.post("/v1/calls", json=_long_call("long")).status_code == 202
                for call_id in KEPT:
                    assert c.post("/v1/calls", json=_angry_call(call_id)).status_code == 202
            waiting = {call_id: _status(gw, call_id)["status"] for call_id in KEPT}
            assert _status(gw, "long")["status"] == "running", "killed too late"
            assert set(waiting.values()) == {"queued"}, waiting
            os.kill(server.pid, signal.SIGKILL)
            assert server.wait(30) == -signal.SIGKILL
        finally:
            stop(server)

        inputs = _stored_inputs(tmp_path / "gw" / "db.sqlite")
        assert set(inputs) == {"long", *KEPT}
        for call_id in KEPT:  # what waited through the crash had passed redaction
            texts = [u["text"] for u in json.loads(inputs[call_id])["utterances"]]
            assert texts[2] == "This is absurd, my card is [CARD]."
            assert CARD not in inputs[call_id] and CARD.replace(" ", "") not in inputs[call_id]

        restarted = gw.start("--config", str(config))
        try:
            deadline = time.monotonic() + 300
            while time.monotonic() < deadline:
                calls = {call_id: _status(gw, call_id) for call_id in ("long", *KEPT)}
                if all(body["status"] in ("done", "failed") for body in calls.values()):
                    break
                time.sleep(0.5)
            for call_id, body in calls.items():
                assert body["status"] == "done", (call_id, body["status"], body["error"])
            assert calls["long"]["utterance_count"] == 100_000
            for call_id in KEPT:
                body = calls[call_id]
                assert [d["rule"] for d in body["decisions"]] == ["angry-streak"]
                assert body["summary"]["escalated"] is True
                assert body["utterances"][2]["text"] == "This is absurd, my card is [CARD]."
            while time.monotonic() < deadline:  # the escalations' webhooks
                sent = {c for c in KEPT for r in box.received if c in r["body"]}
                if sent == set(KEPT):
                    break
                time.sleep(0.2)
            assert sent == set(KEPT)
            box.assert_all_verified()
            assert _stored_inputs(tmp_path / "gw" / "db.sqlite") == {}  # gone once done
        finally:
            restarted.send_signal(signal.SIGTERM)
            restarted.wait(60)
