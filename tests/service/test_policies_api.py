"""Policies, webhooks and metrics over HTTP (no recognizer needed)."""

from __future__ import annotations

import time
from typing import Any

from tests.policy_engines import assert_backend, matchers_built
from tests.service.conftest import Service, policy_matcher
from tests.service.test_api import post_transcript

VIP = """\
policy: vip
description: Escalate a VIP caller at the first angry word.
rules:
  - id: vip-angry
    when: {speaker: customer, emotion: ANGRY}
    once: true
    then:
      - escalate: {priority: urgent, reason: vip}
"""

BAD = """\
policy: broken
rules:
  - id: too-eager
    when: {speaker: customer, emotion: ANGRY, consecutive: 0}
    then:
      - escalate: {priority: high}
"""

TESTS = """\
cases:
  - name: three angry turns escalate
    utterances: [{emotion: ANGRY}, {emotion: ANGRY}, {emotion: ANGRY}]
    expect:
      - {rule: angry-streak, action: escalate, at: 6}
  - name: a wrong expectation fails with a diff
    utterances: [{emotion: ANGRY}, {emotion: ANGRY}, {emotion: ANGRY}]
    expect: []
"""


def test_a_bad_policy_gets_problem_details_with_file_and_line(light_service: Service) -> None:
    with light_service.client() as c:
        resp = c.put(
            "/v1/policies/broken", content=BAD, headers={"content-type": "application/yaml"}
        )
        assert resp.status_code == 422
        assert resp.headers["content-type"] == "application/problem+json"
        problem = resp.json()
        assert problem["status"] == 422 and problem["instance"] == "/v1/policies/broken"
        assert problem["problems"][0].startswith(
            "policies/broken.yaml:4: rules[0].when.consecutive:"
        )
        assert c.get("/v1/policies/broken").status_code == 404  # nothing stored
        # duplicate YAML keys and a rule id clashing with the active set are refused too
        resp = c.put("/v1/policies/dup", content="policy: a\npolicy: b\nrules: []\n")
        assert resp.status_code == 422 and "policies/dup.yaml:2" in resp.json()["problems"][0]
        clash = VIP.replace("vip-angry", "angry-streak").replace("policy: vip", "policy: clash")
        resp = c.put("/v1/policies/clash", content=clash)
        assert resp.status_code == 422 and "already used" in resp.text
        check = c.post("/v1/policies/broken/validate", content=BAD).json()
        assert check["valid"] is False and check["problems"][0].startswith(
            "policies/broken.yaml:4:"
        )


def test_a_stored_policy_is_used_for_new_calls(engine_service: Service, policy_engine: str) -> None:
    with engine_service.client() as c:
        resp = c.put("/v1/policies/vip", json={"text": VIP, "active": False})
        assert resp.status_code == 200, resp.text
        out = resp.json()
        assert out["source"] == "stored" and out["rules"] == ["vip-angry"] and not out["active"]
        assert c.get("/v1/policies/vip").json()["text"] == VIP
        names = {p["name"]: p for p in c.get("/v1/policies").json()}
        assert names["default"]["source"] == "config" and names["vip"]["active"] is False
    assert post_transcript(engine_service, "vip-call", ["ANGRY"], policy="vip").status_code == 202
    body = engine_service.wait_call("vip-call")
    assert body["status"] == "done" and body["policy"] == "vip"
    assert [(d["rule"], d["at"]) for d in body["decisions"]] == [("vip-angry", 2.0)]
    assert_backend(policy_matcher(engine_service, "vip"), policy_engine)
    # calls naming no policy still run the active set only
    assert post_transcript(engine_service, "plain-call", ["ANGRY"]).status_code == 202
    assert engine_service.wait_call("plain-call")["decisions"] == []
    with engine_service.client() as c:
        resp = c.post(
            "/v1/calls",
            json={
                "call_id": "x1",
                "policy": "nosuch",
                "utterances": [
                    {
                        "call_id": "x",
                        "channel": 0,
                        "speaker": "customer",
                        "start": 0,
                        "end": 1,
                        "text": "hi",
                    }
                ],
            },
        )
        assert resp.status_code == 404
        # making it active puts it in the default set
        assert c.put("/v1/policies/vip", content=VIP, params={"active": "true"}).json()["active"]
    assert post_transcript(engine_service, "plain-call-2", ["ANGRY"]).status_code == 202
    body = engine_service.wait_call("plain-call-2")
    assert body["policy"] == "default,vip"
    assert [d["rule"] for d in body["decisions"]] == ["vip-angry"]
    assert_backend(policy_matcher(engine_service), policy_engine)
    with engine_service.client() as c:
        assert c.delete("/v1/policies/vip").status_code == 200
        assert c.get("/v1/policies/vip").status_code == 404
        assert c.delete("/v1/policies/vip").status_code == 404


def test_policy_names_cannot_walk_the_disk(light_service: Service) -> None:
    with light_service.client() as c:
        for name in ("...", ".hidden", "a.b", "x" * 65, "a%20b"):
            assert c.get(f"/v1/policies/{name}").status_code == 400, name
            assert c.put(f"/v1/policies/{name}", content=VIP).status_code == 400, name
        for path in (
            "/v1/policies/..",
            "/v1/policies/%2e%2e",
            "/v1/policies/..%2F..%2Fetc%2Fpasswd",
            "/v1/policies/../../etc/passwd",
            "/v1/calls/..%2F..%2Fcallsense.db",
            "/v1/calls/.env",
        ):
            assert c.get(path).status_code in (400, 404), path
        assert c.get("/v1/policies/default").status_code == 200


def test_policy_tests_run_over_http(engine_service: Service, policy_engine: str) -> None:
    with matchers_built() as matchers, engine_service.client() as c:
        report = c.post("/v1/policies/default/test", content=TESTS).json()
        assert (report["passed"], report["failed"]) == (1, 1)
        failing = report["cases"][1]
        assert failing["line"] == 6 and not failing["passed"]
        assert any(line.startswith("+ angry-streak escalate at=6") for line in failing["diff"])
        # a draft is tested without storing it
        draft = c.post("/v1/policies/default/test", json={"tests": TESTS, "policy": VIP}).json()
        assert draft["passed"] == 0
        resp = c.post("/v1/policies/default/test", content="policies: [/etc/passwd]\n" + TESTS)
        assert resp.status_code == 422 and resp.json()["problems"][0].startswith("tests.yaml:1:")
        resp = c.post("/v1/policies/default/test", content="cases:\n  - name: x\n    expect: []\n")
        assert resp.status_code == 422
        assert resp.json()["problems"][0].startswith("tests.yaml:2: cases[0].utterances")
        assert c.post("/v1/policies/nosuch/test", content=TESTS).status_code == 404
        # the shipped tests of the default policy, served for the editor, pass
        shipped = c.get("/v1/policies/default/tests")
        assert shipped.status_code == 200 and "policies:" not in shipped.json()["text"]
        report = c.post("/v1/policies/default/test", content=shipped.json()["text"]).json()
        assert report["failed"] == 0 and report["passed"] >= 5
        assert c.get("/v1/policies/nosuch/tests").status_code == 404
    # each request compiled its own engine, on the configured backend (closed by now)
    assert matchers
    for matcher in matchers:
        assert_backend(matcher, policy_engine, used=False)


def test_diff_backtests_two_policies_on_stored_calls(
    engine_service: Service, policy_engine: str
) -> None:
    for call_id, emotions in (
        ("diff-2", ["ANGRY", "ANGRY"]),
        ("diff-3", ["ANGRY"] * 3),
        ("diff-0", ["CALM"]),
    ):
        assert post_transcript(engine_service, call_id, emotions).status_code == 202
        assert engine_service.wait_call(call_id)["status"] == "done"
    with matchers_built() as matchers, engine_service.client() as c:
        default = c.get("/v1/policies/default").json()["text"]
        twice = default.replace("consecutive: 3", "consecutive: 2")
        resp = c.post(
            "/v1/policies/diff",
            json={"old": {"name": "default"}, "new": {"text": twice}, "limit": 500},
        )
        assert resp.status_code == 200, resp.text
        report = resp.json()
        changed = {x["call_id"]: x for x in report["changed"]}
        assert report["calls_checked"] >= 3
        assert changed["diff-2"]["removed"] == []
        assert [(d["rule"], d["at"]) for d in changed["diff-2"]["added"]] == [("angry-streak", 5.0)]
        assert [(d["at"]) for d in changed["diff-3"]["removed"]] == [8.0]
        assert [(d["at"]) for d in changed["diff-3"]["added"]] == [5.0]
        assert "diff-0" not in changed
        same = c.post(
            "/v1/policies/diff", json={"old": {"name": "default"}, "new": {"text": default}}
        ).json()
        assert same["calls_changed"] == 0
        bad = c.post(
            "/v1/policies/diff",
            json={"old": {"name": "default"}, "new": {"text": "policy: x\nrules: 3\n"}},
        )
        assert bad.status_code == 422 and bad.json()["problems"][0].startswith("new.yaml:2: rules")
        assert c.post("/v1/policies/diff", json={"old": {"name": "default"}}).status_code == 422
    # old and new, per diff request, on the configured backend (closed by now)
    assert matchers
    for matcher in matchers:
        assert_backend(matcher, policy_engine, used=False)


def _wait(predicate: Any, timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    return predicate()


def test_webhooks_are_listed_masked_and_dead_letters_retried(light_service: Service) -> None:
    assert post_transcript(light_service, "wh-call", ["ANGRY"] * 3).status_code == 202
    assert light_service.wait_call("wh-call")["status"] == "done"
    with light_service.client() as c:
        endpoints = c.get("/v1/webhooks")
        assert endpoints.status_code == 200
        assert "whsec_" not in endpoints.text and "hush" not in endpoints.text
        assert "token=abc" not in endpoints.text
        assert [e["name"] for e in endpoints.json()] == ["good", "refusing"]
        failed = _wait(
            lambda: [m for m in c.get("/v1/webhooks/failed").json() if m["call_id"] == "wh-call"]
        )
        (dead,) = failed
        assert dead["endpoint"] == "refusing" and dead["last_status"] == 400
        resp = c.post(f"/v1/webhooks/failed/{dead['webhook_id']}/retry")
        assert resp.status_code == 200 and resp.json()["status"] == "pending"
        # it is sent again and refused again
        again = _wait(
            lambda: [
                m
                for m in c.get("/v1/webhooks/failed").json()
                if m["webhook_id"] == dead["webhook_id"]
                and m["attempts"] == 1
                and m["updated_at"] > dead["updated_at"]
            ]
        )
        assert again
        assert c.post("/v1/webhooks/failed/msg_nosuch/retry").status_code == 404


def test_metrics_need_a_key_and_count_what_happened(light_service: Service, receiver: Any) -> None:
    assert post_transcript(light_service, "metrics-call", ["ANGRY"] * 3).status_code == 202
    assert light_service.wait_call("metrics-call")["status"] == "done"
    with light_service.client(key=None) as anon:
        assert anon.get("/metrics").status_code == 401
    with light_service.client() as c:
        text = _wait(
            lambda: (
                (t := c.get("/metrics").text)
                and 'callsense_webhook_deliveries_total{outcome="delivered"}' in t
                and t
            )
        )
        assert text
        resp = c.get("/metrics")
        assert resp.headers["content-type"].startswith("text/plain")
    values = _samples(text)
    assert values['callsense_calls_total{status="done"}'] >= 1
    assert values["callsense_utterances_total"] >= 6
    assert values['callsense_decisions_total{rule="angry-streak"}'] >= 1
    assert values['callsense_webhook_deliveries_total{outcome="delivered"}'] >= 1
    assert values['callsense_webhook_deliveries_total{outcome="dead"}'] >= 1
    assert values['callsense_stage_seconds_count{stage="analyze"}'] >= 1
    assert values["callsense_live_sessions"] == 0
    assert len(receiver.received) >= 1


def _samples(text: str) -> dict[str, float]:
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            out[name] = float(value)
    return out
