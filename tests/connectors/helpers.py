"""Decisions and endpoint configs shaped like the rules engine's output, for connector tests."""

from __future__ import annotations

from typing import Any

from callsense.connectors.webhooks import WebhookEndpoint
from callsense.rules.model import Decision, Evidence

# a routing policy: three angry customer turns route the call to the supervisors' queue
ROUTE_ON_THREE_ANGRY = """\
policy: routing
rules:
  - id: angry-to-supervisors
    when: {speaker: customer, emotion: ANGRY, consecutive: 3}
    once: true
    then:
      - route: {queue: supervisors}
"""


def decision(
    i: int = 0,
    *,
    action: str = "escalate",
    priority: str = "high",
    rule: str = "angry_twice",
    call_id: str | None = None,
    params: dict[str, Any] | None = None,
) -> Decision:
    if params is None:
        params = (
            {"priority": priority, "reason": "customer angry twice"} if action == "escalate" else {}
        )
    return Decision(
        call_id=call_id or f"call-{i:05d}",
        policy="default",
        rule=rule,
        action=action,
        params=params,
        at=12.5 + i,
        evidence=(Evidence(3, 10.0, 12.0, "customer", "ANGRY", "Speech"),),
        policy_hash="3f2a9c0d1e",
    )


def endpoint(url: str, secret: str, **kw: Any) -> WebhookEndpoint:
    data: dict[str, Any] = {
        "name": "tickets",
        "url": url,
        "secret": secret,
        "actions": ["escalate"],
        "timeout_s": 2.0,
        "retry": {"schedule_s": [0.05, 0.1, 0.2], "max_attempts": 4, "jitter": 0.1},
    }
    data.update(kw)
    return WebhookEndpoint.model_validate(data)
