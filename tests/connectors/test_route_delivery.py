"""``route`` decisions leave through the outbox: committed first, carried out by the platform
adapter against a real loopback server, retried on 5xx, dead-lettered when refused."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from callsense.connectors.appconfig import AppConfig
from callsense.connectors.outbox import Outbox, deliver_decisions
from callsense.connectors.route_delivery import route_endpoints
from callsense.connectors.routing_config import RoutingConfig
from callsense.connectors.storage import make_engine
from callsense.connectors.webhooks import RetryPolicy, WebhooksConfig
from callsense.rules.model import Decision

from .conftest import Receiver, Recorded, Reply
from .helpers import decision


def route(i: int, queue: str = "priority", **params: Any) -> Decision:
    return decision(i, action="route", rule="angry_three_times", params={"queue": queue, **params})


def delivery_config(receiver: Receiver, secret: str, **routing: Any) -> WebhooksConfig:
    return WebhooksConfig.model_validate(
        {
            "webhooks": [
                {
                    "name": "tickets",
                    "url": f"{receiver.url}/hook",
                    "secret": secret,
                    "actions": ["escalate"],
                }
            ],
            "routing": [
                {"name": "cc", "kind": "http", "url": f"{receiver.url}/route"},
                {"name": "backup", "kind": "http", "url": f"{receiver.url}/backup"},
            ],
            "routing_default": "cc",
            **routing,
        }
    )


def test_routes_and_webhooks_leave_through_one_outbox(
    db_url: str, receiver: Receiver, secret: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    fast = RetryPolicy(schedule_s=[0.05, 0.05, 0.05])
    monkeypatch.setattr("callsense.connectors.route_delivery.ROUTE_RETRY", fast)
    cfg = delivery_config(receiver, secret)

    # the platform is down for the first route request, then takes it
    def respond(req: Recorded) -> Reply:
        if req.path == "/route" and sum(r.path == "/route" for r in receiver.requests) == 1:
            return Reply(503)
        return Reply(200)

    receiver.responder = respond
    decisions = [decision(1), route(2), route(3, queue="vip", target="backup")]
    report = deliver_decisions(decisions, cfg, db_url=db_url, deadline_s=20)
    assert report.complete and report.delivered == 3 and report.retried == 1
    paths = sorted(r.path for r in receiver.requests)
    assert paths == ["/backup", "/hook", "/route", "/route"]
    first_route = next(r for r in receiver.requests if r.path == "/route")
    sent = json.loads(first_route.body)
    assert (sent["action"], sent["params"]["queue"], sent["call_id"]) == (
        "route",
        "priority",
        "call-00002",
    )
    backup = json.loads(next(r for r in receiver.requests if r.path == "/backup").body)
    assert backup["params"] == {"queue": "vip", "target": "backup"}

    engine = make_engine(db_url)
    try:
        outbox = Outbox(engine, cfg.endpoints())
        by_endpoint = {m.endpoint: m.status for m in outbox.messages()}
        assert by_endpoint == {
            "tickets": "delivered",
            "route:cc": "delivered",
            "route:backup": "delivered",
        }
    finally:
        engine.dispose()


def test_a_refused_route_is_a_dead_letter_with_a_safe_reason(
    db_url: str, receiver: Receiver, secret: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ROUTE_TOKEN", "very-secret-token")
    cfg = delivery_config(
        receiver,
        secret,
        routing=[
            {
                "name": "cc",
                "kind": "http",
                "url": f"{receiver.url}/route",
                "bearer_token_env": "ROUTE_TOKEN",
            }
        ],
    )
    receiver.default = Reply(404)
    report = deliver_decisions([route(1)], cfg, db_url=db_url, deadline_s=10)
    assert (report.delivered, report.dead) == (0, 1)
    assert receiver.requests[0].headers["authorization"] == "Bearer very-secret-token"
    engine = make_engine(db_url)
    try:
        (dead,) = Outbox(engine, cfg.endpoints()).failed()
        assert dead.endpoint == "route:cc"
        assert "HTTP 404" in (dead.last_error or "")
        assert "very-secret-token" not in (dead.last_error or "")
    finally:
        engine.dispose()

    monkeypatch.delenv("ROUTE_TOKEN")  # credentials gone: nothing is sent, the reason says why
    receiver.requests.clear()
    report = deliver_decisions([route(2)], cfg, db_url=db_url, deadline_s=10)
    assert report.dead == 1 and receiver.requests == []
    engine = make_engine(db_url)
    try:
        reasons = [m.last_error or "" for m in Outbox(engine, cfg.endpoints()).failed()]
        assert any("ROUTE_TOKEN is not set" in r for r in reasons)
    finally:
        engine.dispose()


def test_which_target_takes_a_route() -> None:
    one = RoutingConfig.model_validate(
        {"routing": [{"name": "only", "kind": "http", "url": "http://127.0.0.1:9/r"}]}
    )
    (only,) = route_endpoints(one)
    assert only.name == "route:only" and only.wants(route(1))  # the only target is the default
    assert not only.wants(decision(1))  # escalations are for webhooks
    assert not only.wants(route(1, target="other"))
    two = RoutingConfig.model_validate(
        {
            "routing": [
                {"name": "a", "kind": "http", "url": "http://127.0.0.1:9/a"},
                {"name": "b", "kind": "http", "url": "http://127.0.0.1:9/b"},
            ]
        }
    )
    a, b = route_endpoints(two)
    assert not a.wants(route(1)) and not b.wants(route(1))  # no default: only named routes
    assert b.wants(route(1, target="b")) and not a.wants(route(1, target="b"))


def test_app_config_lists_routing_targets_among_its_endpoints(secret: str) -> None:
    cfg = AppConfig.model_validate(
        {
            "webhooks": [{"name": "t", "url": "http://127.0.0.1:9/h", "secret": secret}],
            "routing": [{"name": "cc", "kind": "http", "url": "http://127.0.0.1:9/r"}],
        }
    )
    assert [e.name for e in cfg.delivery_endpoints()] == ["t", "route:cc"]
    with pytest.raises(ValueError, match="routing_default 'nope'"):
        AppConfig.model_validate({"routing": [], "routing_default": "nope"})


def test_a_policy_route_can_name_its_target(tmp_path: Path) -> None:
    from callsense.pipeline.model import CallTranscript, Utterance
    from callsense.pipeline.session import replay_transcript
    from callsense.rules.engine import PolicyEngine

    policy = tmp_path / "p.yaml"
    policy.write_text(
        "policy: p\nrules:\n  - id: vip\n    when: {speaker: customer, emotion: ANGRY}\n"
        "    once: true\n    then:\n      - route: {queue: vip, target: backup}\n"
    )
    engine = PolicyEngine.load([policy])
    utt = Utterance(
        call_id="c1", channel=0, speaker="customer", start=0.0, end=2.0, source="speech", lang="en",
        emotion="ANGRY", event="Speech", text="no", raw="<|en|><|ANGRY|><|Speech|>no",
    )  # fmt: skip
    (d,) = replay_transcript(CallTranscript(call_id="c1", utterances=(utt,), duration=2.0), engine)
    engine.close()
    assert d.to_dict()["params"] == {"queue": "vip", "target": "backup"}
    config = RoutingConfig.model_validate(
        {
            "routing": [
                {"name": "cc", "kind": "http", "url": "http://127.0.0.1:9/a"},
                {"name": "backup", "kind": "http", "url": "http://127.0.0.1:9/b"},
            ],
            "default_target": "cc",
        }
    )
    cc, backup = route_endpoints(config)
    assert backup.wants(d) and not cc.wants(d)
