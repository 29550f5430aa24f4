"""A framework's decisions reach callsense's durable outbox as a live route's do."""

from __future__ import annotations

import asyncio
from pathlib import Path

from callsense.connectors.appconfig import AppConfig
from callsense.connectors.endpoint import RouteContext
from callsense.connectors.integrations.common import OutboxOutlet
from callsense.connectors.webhooks import OutboxSettings, WebhookEndpoint
from callsense.rules.model import Decision

SECRET = "whsec_" + "a2tra2tra2tra2tra2tra2tra2tra2tra2tra2tra2s="


def decision(action: str, at: float) -> Decision:
    return Decision("bot-1", "default", "angry-streak", action, {"priority": "high"}, at, (), "h")


def test_decisions_are_committed_per_interested_endpoint(tmp_path: Path) -> None:
    cfg = AppConfig(
        webhooks=[
            WebhookEndpoint(
                name="crm", url="http://127.0.0.1:9/hook", secret=SECRET, actions=["escalate"]
            )
        ],
        outbox=OutboxSettings(db_url=f"sqlite:///{tmp_path}/outbox.db"),
    )
    outlet = OutboxOutlet.from_config(cfg, RouteContext(call_sid="CA123"))

    async def main() -> None:
        await outlet(decision("escalate", 19.4))
        await outlet(decision("mark", 20.0))  # no endpoint wants it: stored, not queued

    asyncio.run(main())
    messages = outlet.outbox.messages()
    assert [(m.endpoint, m.action, m.status, m.call_id) for m in messages] == [
        ("crm", "escalate", "pending", "bot-1")
    ]
