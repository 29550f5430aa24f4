"""The supervisor wall's server side: alerts stored and acknowledged once (SQLite and
PostgreSQL), a call's running figures equal to its summary's dynamics, the hub's mailboxes
(coalescing, a fresh snapshot for a page that fell behind), and ``WS /v1/wall`` of a real
service fed by live sessions' ``_Record``."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from websockets.exceptions import InvalidStatus
from websockets.sync.client import ClientConnection, connect

from callsense.connectors.app import create_app
from callsense.connectors.appconfig import AppConfig
from callsense.connectors.calls_store import CallStore
from callsense.connectors.service_settings import ServiceSettings
from callsense.connectors.storage import create_schema, make_engine
from callsense.connectors.wall.alerts import AlertStore, AlreadyAcknowledged
from callsense.connectors.wall.board import CallView
from callsense.connectors.wall.hub import WallHub
from callsense.pipeline.config import CacheConfig
from callsense.pipeline.dynamics import call_dynamics
from callsense.rules.model import Decision
from tests.pipeline.test_dynamics import CALL
from tests.service.server import running, wait_ready
from tests.wall_sim import LoopCatcher, SimCalls

WallService = tuple[str, dict[str, str], SimCalls]  # base URL, keys by role, the calls
SECRET_TEXT = "my card number is redacted-4242"  # what the calls say: must never reach a log


def _decision(call_id: str, rule: str = "angry-streak", **params: Any) -> Decision:
    params = params or {"priority": "high", "reason": "three consecutive angry utterances"}
    action = "route" if "queue" in params else "escalate"
    return Decision(call_id, "default", rule, action, params, 12.5, (), "h1")


def test_alerts_are_stored_once_acknowledged_once_and_go_with_their_call(db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        calls, alerts = CallStore(engine), AlertStore(engine)
        for call_id in ("c1", "c2"):
            calls.create(call_id, kind="live", status="running")
        first = alerts.add(_decision("c1"), fired_at=100.0)
        assert alerts.add(_decision("c1"), fired_at=200.0) == first  # a replay adds nothing
        routed = alerts.add(_decision("c2", "billing", queue="billing"), fired_at=150.0)
        assert (first.priority, first.queue, first.state) == ("high", None, "open")
        assert (routed.action, routed.queue, routed.reason) == ("route", "billing", None)
        assert [a.id for a in alerts.list()] == [routed.id, first.id]  # newest first
        assert [a.id for a in alerts.list(priority="high")] == [first.id]
        assert [a.id for a in alerts.list(queue="billing")] == [routed.id]

        acked = alerts.acknowledge(first.id, "supervisor-1", at=300.0)
        assert acked is not None and (acked.acked_by, acked.acked_at) == ("supervisor-1", 300.0)
        with pytest.raises(AlreadyAcknowledged) as late:
            alerts.acknowledge(first.id, "supervisor-2")
        assert late.value.alert.acked_by == "supervisor-1"  # the first stays recorded
        assert alerts.acknowledge("dec_nope", "supervisor-1") is None
        assert [a.id for a in alerts.list(state="open")] == [routed.id]
        assert [a.id for a in alerts.list(state="acknowledged")] == [first.id]
        assert [a.id for a in alerts.recent()] == [routed.id, first.id]

        calls.delete("c1")  # erasing a call erases its alerts
        assert [a.call_id for a in alerts.list(state="all")] == ["c2"]
    finally:
        engine.dispose()


def test_a_calls_running_figures_end_equal_to_its_summarys_dynamics() -> None:
    view = CallView("c", "stream", None, "en")
    for utt in CALL.utterances:  # in the order they end, as a live call hears them
        view.hear(utt)
    figures = view.record()
    summary = call_dynamics(CALL)
    for speaker, dyn in summary.speakers.items():
        assert figures["speakers"][speaker]["talk_ratio"] == pytest.approx(dyn.talk_ratio, abs=1e-3)
    expected = [[round(t, 2), round(v, 3)] for t, v in summary.temperature.points]
    assert figures["temperature"]["points"] == expected
    # heard last: the customer's laugh at 58 s, so the score now is the summary's last point
    assert figures["temperature"]["now"] == pytest.approx(expected[-1][1], abs=1e-3)
    assert figures["speakers"]["customer"]["emotion"] == "NEUTRAL"  # the laugh's tag
    assert figures["last"]["text"] == "ha ha" and figures["position"] == 58.0


def test_a_mailbox_keeps_the_latest_state_and_a_page_too_far_behind_gets_a_snapshot() -> None:
    async def scenario() -> None:
        hub = WallHub(limit=5)
        sub = hub.subscribe()
        for i in range(100):  # one call changing 100 times: one message, the latest
            sub.offer("call:a", {"type": "call", "n": i})
        assert await sub.take() == [{"type": "call", "n": 99}]
        for i in range(5):
            sub.offer(f"alert:{i}", {"type": "alert", "n": i})
        sub.offer("alert:0", {"type": "alert", "n": "again"})  # known key: still fits
        assert len(await sub.take() or []) == 5
        for i in range(6):  # a sixth key while five are waiting: behind
            sub.offer(f"call:{i}", {"type": "call", "n": i})
        assert await sub.take() is None
        sub.offer("call:x", {"type": "call"})
        assert await sub.take() == [{"type": "call"}]  # caught up again
        hub.unsubscribe(sub)
        assert hub.subscribers == 0

    asyncio.run(scenario())


# --- WS /v1/wall of a real service ---------------------------------------------------------


@pytest.fixture(scope="module")
def wall_service(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[WallService]:
    tmp = tmp_path_factory.mktemp("wall-service")
    app = create_app(
        AppConfig(cache=CacheConfig(enabled=False)),
        db_url=f"sqlite:///{tmp}/callsense.db",
        load_models=False,
        settings=ServiceSettings(data_dir=tmp / "data", scheduler=False),
    )
    keys = {"admin": app.state.runtime.keys.create("supervisor"),
            "viewer": app.state.runtime.keys.create("wallboard", "viewer")}  # fmt: skip
    catcher = LoopCatcher(app)
    with running(catcher) as url:  # type: ignore[arg-type]
        wait_ready(url)
        yield url, keys, SimCalls(catcher)


def _page(url: str, key: str) -> ClientConnection:
    return connect(url.replace("http://", "ws://") + f"/v1/wall?api_key={key}", open_timeout=10)


def _next(ws: ClientConnection) -> dict[str, Any]:
    message: dict[str, Any] = json.loads(ws.recv(timeout=10))
    return message


def _until(ws: ClientConnection, wanted: str, key: str) -> dict[str, Any]:
    """Updates until one carries an item of type ``wanted`` about ``key``; that item."""
    while True:
        message = _next(ws)
        assert message["type"] == "update", message
        for item in message["items"]:
            about = item.get("call_id") or item.get("call", {}).get("call_id")
            if item["type"] == wanted and key in (about, item.get("alert", {}).get("id")):
                return item


def test_the_wall_pushes_calls_and_alerts_and_every_page_sees_the_acknowledgement(
    wall_service: WallService, caplog: pytest.LogCaptureFixture
) -> None:
    url, keys, sim = wall_service
    caplog.set_level(logging.INFO)
    admin = {"Authorization": f"Bearer {keys['admin']}"}
    viewer = {"Authorization": f"Bearer {keys['viewer']}"}
    with _page(url, keys["admin"]) as page:
        snapshot = _next(page)
        assert (snapshot["type"], snapshot["role"], snapshot["key"]) == (
            "snapshot",
            "admin",
            "supervisor",
        )
        sim.start("wall-c1")
        assert _until(page, "call", "wall-c1")["call"]["utterances"] == 0
        for _ in range(3):
            sim.say("wall-c1", "customer", SECRET_TEXT, emotion="ANGRY")
        sim.say("wall-c1", "agent", "let me check", emotion=None)
        decision = sim.decide("wall-c1", "angry-streak", "escalate",
                              {"priority": "high", "reason": "three angry turns"})  # fmt: skip
        alert = None
        call: dict[str, Any] = {}
        while alert is None:
            for item in _next(page)["items"]:
                if item["type"] == "call":
                    call = item["call"]
                elif item["type"] == "alert":
                    alert = item["alert"]
        assert (call["utterances"], call["decisions"], call["top_priority"]) == (4, 1, "high")
        assert call["speakers"]["customer"]["emotion"] == "ANGRY"
        assert call["speakers"]["agent"]["emotion"] is None  # agent emotions are not kept
        assert call["speakers"]["customer"]["talk_ratio"] == pytest.approx(0.75)
        assert call["temperature"]["now"] > 0.5 and len(call["temperature"]["points"]) == 3
        assert call["last"]["speaker"] == "agent"
        assert (alert["rule"], alert["priority"], alert["state"]) == (
            "angry-streak",
            "high",
            "open",
        )
        assert alert["call_id"] == decision.call_id

        with _page(url, keys["viewer"]) as watcher:  # a page opened later starts from a snapshot
            later = _next(watcher)
            assert later["role"] == "viewer"
            assert [c["call_id"] for c in later["calls"]] == ["wall-c1"]
            assert [a["id"] for a in later["alerts"]] == [alert["id"]]

            with httpx.Client(base_url=url, timeout=10) as http:
                refused = http.post(f"/v1/alerts/{alert['id']}/ack", headers=viewer)
                assert refused.status_code == 403
                assert refused.headers["content-type"] == "application/problem+json"
                done = http.post(f"/v1/alerts/{alert['id']}/ack", headers=admin)
                assert done.status_code == 200 and done.json()["acked_by"] == "supervisor"
                again = http.post(f"/v1/alerts/{alert['id']}/ack", headers=admin)
                assert again.status_code == 409 and "supervisor" in again.json()["detail"]
                for ws in (page, watcher):  # every page hears of it
                    news = _until(ws, "alert", alert["id"])["alert"]
                    assert (news["state"], news["acked_by"]) == ("acknowledged", "supervisor")
                assert http.get("/v1/alerts", headers=viewer).json() == []
                stored = http.get("/v1/alerts?state=acknowledged", headers=viewer).json()
                assert [(a["id"], a["acked_by"]) for a in stored] == [(alert["id"], "supervisor")]

            sim.end("wall-c1")
            assert _until(watcher, "ended", "wall-c1") == {"type": "ended", "call_id": "wall-c1"}

        with httpx.Client(base_url=url, timeout=10, headers=admin) as http:
            assert http.delete("/v1/calls/wall-c1").status_code == 200
            assert http.get("/v1/alerts?state=all&call_id=wall-c1").json() == []

    audit = [r.getMessage() for r in caplog.records if "acknowledged by key" in r.getMessage()]
    assert audit == [f"alert {alert['id']} (call wall-c1, rule angry-streak, escalate) "
                     "acknowledged by key supervisor"]  # fmt: skip
    assert not [r for r in caplog.records if "redacted-4242" in r.getMessage()]


def test_the_wall_refuses_a_missing_or_wrong_key_at_the_upgrade(
    wall_service: WallService,
) -> None:
    url, _, _ = wall_service
    for key in ("", "csk_000000000000_" + "x" * 43):
        with pytest.raises(InvalidStatus) as refused:
            _page(url, key).close()
        assert refused.value.response.status_code == 401


def test_a_wall_page_that_goes_away_leaves_the_hub(
    wall_service: WallService,
) -> None:
    url, keys, sim = wall_service
    with _page(url, keys["viewer"]) as page:
        _next(page)
        assert sim.run(_subscribers(sim)) >= 1
    sim.start("wall-gone")  # publishing after the page left must not fail
    sim.end("wall-gone")
    for _ in range(50):
        if sim.run(_subscribers(sim)) == 0:
            break
        sim.run(asyncio.sleep(0.1))
    assert sim.run(_subscribers(sim)) == 0


async def _subscribers(sim: SimCalls) -> int:
    count: int = sim.catcher.app.state.wall.hub.subscribers
    return count


def test_an_alert_that_cannot_be_stored_does_not_stop_the_call_or_its_decisions(
    wall_service: WallService,
) -> None:
    url, keys, sim = wall_service
    engine = sim.catcher.app.state.runtime.engine
    with _page(url, keys["admin"]) as page:
        _next(page)
        sim.start("wall-broken")
        with engine.begin() as conn:  # the alerts table is gone (a broken migration, say)
            conn.execute(text("DROP TABLE callsense_alerts"))
        try:
            sim.say("wall-broken", "customer", "hello", emotion="ANGRY")
            sim.decide("wall-broken", "angry-streak", "escalate", {"priority": "high"})
            item = _until(page, "call", "wall-broken")
            while item["call"]["decisions"] == 0:
                item = _until(page, "call", "wall-broken")
            assert item["call"]["top_priority"] == "high"  # the call's figures go on
        finally:
            create_schema(engine)
        with httpx.Client(base_url=url, headers={"X-API-Key": keys["admin"]}) as http:
            stored = http.get("/v1/calls/wall-broken").json()
        assert [d["rule"] for d in stored["decisions"]] == ["angry-streak"]
        sim.end("wall-broken")
