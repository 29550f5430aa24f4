"""The supervisor wall's hub: live sessions publish to it, wall pages subscribe.

In process and on the event loop: a live call's ``_Record`` tells the ``Wall`` each event
right after storing it; the hub folds it into the call's ``CallView`` and offers the new
state to every subscriber. A subscriber holds at most one pending message per call and per
alert (the latest state wins, so a page that reads slowly gets fewer, fresher messages);
one that falls more than ``MAX_PENDING`` keys behind is sent a new snapshot instead. The hub
never waits for a subscriber: a slow page cannot slow a call.

A hub knows its own process's calls. With several gateways, a wall connection shows the
calls of the gateway it reached; alerts live in the shared database and all show.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from callsense.connectors.wall.alerts import AlertStore, StoredAlert
from callsense.connectors.wall.board import CallView
from callsense.pipeline.model import Utterance
from callsense.rules.model import Decision

__all__ = ["MAX_PENDING", "Subscription", "Wall", "WallHub"]

log = logging.getLogger(__name__)

MAX_PENDING = 2000  # calls and alerts with news a subscriber has not taken yet

Message = dict[str, Any]


@dataclass(eq=False, slots=True)
class Subscription:
    """One wall page's mailbox: the latest message per call and per alert."""

    limit: int = MAX_PENDING
    pending: dict[str, Message] = field(default_factory=dict)
    behind: bool = False
    ready: asyncio.Event = field(default_factory=asyncio.Event)

    def offer(self, key: str, message: Message) -> None:
        if not self.behind:
            if key in self.pending or len(self.pending) < self.limit:
                self.pending[key] = message
            else:  # too far behind: what it lacks is cheaper to resend whole
                self.pending.clear()
                self.behind = True
        self.ready.set()

    async def take(self) -> list[Message] | None:
        """The news since the last take (waits for some); None: it fell behind and needs a
        new snapshot."""
        await self.ready.wait()
        self.ready.clear()
        items = list(self.pending.values())
        self.pending.clear()
        if self.behind:
            self.behind = False
            return None
        return items


class WallHub:
    """The calls in progress and the subscribers to their news."""

    def __init__(self, limit: int = MAX_PENDING) -> None:
        self.calls: dict[str, CallView] = {}
        self.seq = 0  # one more per published change
        self.limit = limit
        self._subscribers: set[Subscription] = set()

    def subscribe(self) -> Subscription:
        sub = Subscription(self.limit)
        self._subscribers.add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        self._subscribers.discard(sub)

    @property
    def subscribers(self) -> int:
        return len(self._subscribers)

    def call_records(self) -> list[Message]:
        """Every call in progress, oldest first (with ``seq``: consistent with it)."""
        return [view.record() for view in self.calls.values()]

    def started(self, call_id: str, protocol: str, policy: str | None, language: str) -> None:
        view = self.calls[call_id] = CallView(call_id, protocol, policy, language)
        self._call(view)

    def heard(self, call_id: str, utterance: Utterance) -> None:
        view = self.calls.get(call_id)
        if view is not None:
            view.hear(utterance)
            self._call(view)

    def decided(self, call_id: str, decision: Decision, alert: StoredAlert | None) -> None:
        view = self.calls.get(call_id)
        if view is not None:
            view.decide(decision)
            self._call(view)
        if alert is not None:
            self.alert(alert)

    def alert(self, alert: StoredAlert) -> None:
        """A new alert, or news of one (acknowledged)."""
        self._publish(f"alert:{alert.id}", {"type": "alert", "alert": alert.record()})

    def ended(self, call_id: str) -> None:
        if self.calls.pop(call_id, None) is not None:
            self._publish(f"call:{call_id}", {"type": "ended", "call_id": call_id})

    def _call(self, view: CallView) -> None:
        self._publish(f"call:{view.call_id}", {"type": "call", "call": view.record()})

    def _publish(self, key: str, message: Message) -> None:
        self.seq += 1
        for sub in self._subscribers:
            sub.offer(key, message)


class Wall:
    """The hub and the alerts store: what live sessions and the wall's routes use."""

    def __init__(self, alerts: AlertStore, hub: WallHub | None = None) -> None:
        self.alerts = alerts
        self.hub = hub or WallHub()

    async def decided(self, call_id: str, decision: Decision) -> StoredAlert | None:
        """Store the decision's alert, then show it (so an acknowledgement finds it). An
        alert that cannot be stored is logged and not shown; the call and its webhooks go
        on (the caller delivers them after this)."""
        try:
            alert: StoredAlert | None = await asyncio.to_thread(self.alerts.add, decision)
        except Exception as exc:
            log.warning("live call %s: alert of %s not stored: %s", call_id, decision.rule,
                        type(exc).__name__)  # fmt: skip
            alert = None
        self.hub.decided(call_id, decision, alert)
        return alert

    async def acknowledge(self, alert_id: str, by: str) -> StoredAlert | None:
        """Record and show that key ``by`` acknowledged the alert (audited in the log).
        None: no such alert; ``AlreadyAcknowledged`` if someone was first."""
        alert = await asyncio.to_thread(self.alerts.acknowledge, alert_id, by)
        if alert is not None:
            log.info("alert %s (call %s, rule %s, %s) acknowledged by key %s", alert.id,
                     alert.call_id, alert.rule, alert.action, by)  # fmt: skip
            self.hub.alert(alert)
        return alert

    async def snapshot(self, **extra: Any) -> Message:
        """The calls in progress and the alerts a page starts from; news after ``seq``
        follows it. The calls are read at ``seq`` (no await between); alerts may be read a
        little later, and pages key them by id, so news of one only ever updates it."""
        seq, calls = self.hub.seq, self.hub.call_records()
        alerts = await asyncio.to_thread(self.alerts.recent)
        return {
            "type": "snapshot",
            "seq": seq,
            "now": time.time(),
            "calls": calls,
            "alerts": [a.record() for a in alerts],
            **extra,
        }
