"""Alerts: the decisions of live calls as a supervisor's to-do list, stored with who
acknowledged each and when.

An alert is one decision (its id is the decision's, so a replayed decision adds nothing)
with the fields a supervisor filters on: the escalation's priority, the route's queue, the
reason the policy gave. It holds no transcript text, only what the policy wrote. An alert
belongs to its call: deleting the call (``DELETE /v1/calls/{id}``, retention) deletes its
alerts through the foreign key. Acknowledging is a conditional update, so of two
supervisors clicking at once exactly one is recorded and the other is told who was first.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any, Literal

from sqlalchemy import (
    Column,
    Engine,
    Float,
    ForeignKey,
    Index,
    String,
    Table,
    Text,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite

from callsense.connectors.outbox_rows import decision_id
from callsense.connectors.storage import create_schema, metadata
from callsense.core.errors import InputError
from callsense.rules.model import Decision

__all__ = [
    "PRIORITIES",
    "AlertState",
    "AlertStore",
    "AlreadyAcknowledged",
    "StoredAlert",
    "alert_of",
    "alerts_table",
]

AlertState = Literal["open", "acknowledged", "all"]
PRIORITIES = ("low", "normal", "high", "urgent")  # escalate's, lowest first
_REASON_CHARS = 500

alerts_table = Table(
    "callsense_alerts",
    metadata,
    Column("id", String(40), primary_key=True),  # the decision's id
    Column(
        "call_id",
        String(128),
        ForeignKey("callsense_calls.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    Column("policy", String(255), nullable=False),
    Column("rule", String(255), nullable=False),
    Column("action", String(32), nullable=False),
    Column("priority", String(16), nullable=True),  # escalate only
    Column("queue", String(255), nullable=True),  # route only
    Column("reason", Text, nullable=True),  # the policy's words, never transcript text
    Column("at", Float, nullable=False),  # audio seconds into the call
    Column("fired_at", Float, nullable=False, index=True),  # wall clock
    Column("acked_by", String(64), nullable=True),  # the key's name
    Column("acked_at", Float, nullable=True),
)
Index("ix_callsense_alerts_open", alerts_table.c.acked_at, alerts_table.c.fired_at)


@dataclass(frozen=True, slots=True)
class StoredAlert:
    id: str
    call_id: str
    policy: str
    rule: str
    action: str
    priority: str | None
    queue: str | None
    reason: str | None
    at: float
    fired_at: float
    acked_by: str | None = None
    acked_at: float | None = None

    @property
    def state(self) -> Literal["open", "acknowledged"]:
        return "open" if self.acked_at is None else "acknowledged"

    def record(self) -> dict[str, Any]:
        """As the API and the wall's WebSocket send it."""
        return {**asdict(self), "state": self.state}


class AlreadyAcknowledged(InputError):
    """Someone acknowledged the alert first; ``alert`` says who and when."""

    def __init__(self, alert: StoredAlert) -> None:
        super().__init__(f"alert {alert.id} was acknowledged by {alert.acked_by!r} already")
        self.alert = alert


def alert_of(decision: Decision, fired_at: float) -> StoredAlert:
    """The alert a live call's decision raises."""
    p = decision.params
    priority = str(p["priority"]) if decision.action == "escalate" and "priority" in p else None
    queue = str(p["queue"]) if decision.action == "route" and "queue" in p else None
    words = p.get("reason") or p.get("tag") or p.get("label") or p.get("kind")
    reason = str(words)[:_REASON_CHARS] if words else None
    return StoredAlert(
        id=decision_id(decision), call_id=decision.call_id, policy=decision.policy,
        rule=decision.rule, action=decision.action, priority=priority, queue=queue,
        reason=reason, at=float(decision.at), fired_at=fired_at,
    )  # fmt: skip


def _alert(row: Any) -> StoredAlert:
    return StoredAlert(**dict(row._mapping))


class AlertStore:
    """The alerts table of one database."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        create_schema(engine)

    def add(self, decision: Decision, fired_at: float | None = None) -> StoredAlert:
        """Store the alert of ``decision`` (once: the same decision again returns the row)."""
        alert = alert_of(decision, time.time() if fired_at is None else fired_at)
        dialect = postgresql if self.engine.dialect.name == "postgresql" else sqlite
        with self.engine.begin() as conn:
            conn.execute(
                dialect.insert(alerts_table).values(**asdict(alert)).on_conflict_do_nothing()
            )
            row = conn.execute(select(alerts_table).where(alerts_table.c.id == alert.id)).one()
        return _alert(row)

    def get(self, alert_id: str) -> StoredAlert | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(alerts_table).where(alerts_table.c.id == alert_id)).first()
        return None if row is None else _alert(row)

    def list(
        self,
        *,
        state: AlertState = "open",
        policy: str | None = None,
        priority: str | None = None,
        queue: str | None = None,
        call_id: str | None = None,
        limit: int = 100,
    ) -> list[StoredAlert]:
        """Newest first; filters combine."""
        t = alerts_table
        query = select(t).order_by(t.c.fired_at.desc(), t.c.id.desc()).limit(limit)
        if state != "all":
            acked = t.c.acked_at
            query = query.where(acked.is_(None) if state == "open" else acked.is_not(None))
        for column, value in ((t.c.policy, policy), (t.c.priority, priority),
                              (t.c.queue, queue), (t.c.call_id, call_id)):  # fmt: skip
            if value is not None:
                query = query.where(column == value)
        with self.engine.connect() as conn:
            return [_alert(r) for r in conn.execute(query).all()]

    def recent(self, open_limit: int = 300, acknowledged_limit: int = 50) -> list[StoredAlert]:
        """What a wall shows when it connects: open alerts and the latest acknowledged."""
        both = self.list(state="open", limit=open_limit)
        both += self.list(state="acknowledged", limit=acknowledged_limit)
        return sorted(both, key=lambda a: (a.fired_at, a.id), reverse=True)

    def acknowledge(self, alert_id: str, by: str, at: float | None = None) -> StoredAlert | None:
        """Record that key ``by`` acknowledged the alert; None if there is no such alert.
        Raises ``AlreadyAcknowledged`` if someone did first (the first stays recorded)."""
        t = alerts_table
        with self.engine.begin() as conn:
            done = conn.execute(
                update(t)
                .where(t.c.id == alert_id, t.c.acked_at.is_(None))
                .values(acked_by=by, acked_at=time.time() if at is None else at)
            ).rowcount
            row = conn.execute(select(t).where(t.c.id == alert_id)).first()
        if row is None:
            return None
        alert = _alert(row)
        if not done:
            raise AlreadyAcknowledged(alert)
        return alert
