"""SLA follow-ups: `escalate: {follow_up: {after: 1s}}` re-escalates unless the call is
resolved, through the durable scheduler and the outbox."""

from __future__ import annotations

import json
import time

from tests.service.conftest import Receiver, Service

POLICY = """policy: sla
rules:
  - id: angry-sla-{n}
    when: {{speaker: customer, emotion: ANGRY, consecutive: 2}}
    once: true
    then:
      - escalate: {{priority: high, follow_up: {{after: 1s, priority: urgent}}}}
"""


def _run(service: Service, n: int, call_id: str) -> None:
    with service.client() as c:
        r = c.put(f"/v1/policies/sla{n}", json={"text": POLICY.format(n=n), "active": False})
        assert r.status_code in (200, 201), r.text
        utterances = [
            {
                "call_id": call_id,
                "channel": 0,
                "speaker": "customer",
                "start": float(i),
                "end": i + 0.8,
                "raw": "<|en|><|ANGRY|><|Speech|><|withitn|>No.",
            }
            for i in range(2)
        ]
        body = {"call_id": call_id, "policy": f"sla{n}", "utterances": utterances}
        assert c.post("/v1/calls", json=body).status_code == 202
    assert service.wait_call(call_id)["status"] == "done"


def _bodies(receiver: Receiver, call_id: str) -> list[dict]:
    with receiver.lock:
        found = [json.loads(r["body"]) for r in receiver.received]
    return [b for b in found if call_id in json.dumps(b)]


def test_unresolved_call_is_escalated_again(light_service: Service, receiver: Receiver) -> None:
    _run(light_service, 1, "sla-open")
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        rules = [json.dumps(b) for b in _bodies(receiver, "sla-open")]
        if any("angry-sla-1.sla_followup" in r for r in rules):
            break
        time.sleep(0.2)
    followups = [r for r in rules if "angry-sla-1.sla_followup" in r]
    assert followups and '"urgent"' in followups[0]


def test_resolved_call_is_not_escalated_again(light_service: Service, receiver: Receiver) -> None:
    _run(light_service, 2, "sla-resolved")
    with light_service.client() as c:
        r = c.post("/v1/calls/sla-resolved/resolve")
        assert r.status_code == 200 and r.json()["cancelled_follow_ups"] == 1
    time.sleep(3.0)  # past the 1 s follow-up and a few delivery rounds
    rules = [json.dumps(b) for b in _bodies(receiver, "sla-resolved")]
    assert any("angry-sla-2" in r for r in rules)  # the first escalation went out
    assert not any("sla_followup" in r for r in rules)
