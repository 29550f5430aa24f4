"""The outbox's tables and the ids of what they hold: a decision's id comes from the decision
itself (call, rule, time, policy hash) and a message's from the decision and its endpoint,
so enqueueing the same decision twice adds nothing and a receiver deduplicates on
``webhook-id``."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Column, Float, ForeignKey, Index, Integer, String, Table, Text

from callsense.connectors.storage import metadata

__all__ = [
    "DEAD",
    "DELIVERED",
    "PENDING",
    "DeliveryReport",
    "OutboxMessage",
    "decision_id",
    "decisions_table",
    "dumps",
    "outbox_table",
    "plain_decision",
    "webhook_id",
]

PENDING, DELIVERED, DEAD = "pending", "delivered", "dead"

decisions_table = Table(
    "callsense_decisions",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("call_id", String(255), nullable=False, index=True),
    Column("policy", String(255), nullable=False, default=""),
    Column("rule", String(255), nullable=False, default=""),
    Column("action", String(32), nullable=False, default=""),
    Column("at", String(64), nullable=False, default=""),
    Column("policy_hash", String(128), nullable=False, default=""),
    Column("body", Text, nullable=False),
    Column("created_at", Float, nullable=False),
)

outbox_table = Table(
    "callsense_outbox",
    metadata,
    Column("webhook_id", String(40), primary_key=True),
    Column(
        "decision_id",
        String(40),
        ForeignKey("callsense_decisions.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    Column("endpoint", String(100), nullable=False),
    Column("payload", Text, nullable=False),
    Column("content_type", String(100), nullable=False),
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", Float, nullable=False),
    Column("lease_until", Float, nullable=False, default=0.0),
    Column("last_status", Integer, nullable=True),
    Column("last_error", Text, nullable=True),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Column("delivered_at", Float, nullable=True),
)
Index("ix_callsense_outbox_due", outbox_table.c.status, outbox_table.c.next_attempt_at)


def json_default(obj: Any) -> Any:
    if isinstance(obj, dt.datetime | dt.date):
        return obj.isoformat()
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclasses.asdict(obj)
    if isinstance(obj, set | frozenset):
        return sorted(obj, key=str)
    if hasattr(obj, "model_dump"):
        return obj.model_dump(mode="json")
    return str(obj)


def dumps(obj: Any) -> str:
    return json.dumps(obj, default=json_default, ensure_ascii=False, separators=(",", ":"))


def plain_decision(decision: Mapping[str, Any] | Any) -> dict[str, Any]:
    """A decision as plain JSON data (a mapping, a dataclass or a pydantic model is accepted)."""
    if not isinstance(decision, Mapping):
        decision = json_default(decision)
        if not isinstance(decision, Mapping):
            raise TypeError("a decision must be a mapping, a dataclass or a pydantic model")
    return json.loads(dumps(dict(decision)))


def decision_id(decision: Mapping[str, Any]) -> str:
    """Stable id of a decision: the same call, rule, time and policy version give the same id."""
    key = "\x1f".join(dumps(decision.get(k, "")) for k in ("call_id", "rule", "at", "policy_hash"))
    return "dec_" + hashlib.sha256(key.encode()).hexdigest()[:32]


def webhook_id(dec_id: str, endpoint: str) -> str:
    """The ``webhook-id`` of one decision sent to one endpoint (``msg_`` + hex, no dots)."""
    return "msg_" + hashlib.sha256(f"{dec_id}\x1f{endpoint}".encode()).hexdigest()[:32]


@dataclass(frozen=True, slots=True)
class DeliveryReport:
    """What one ``deliver_pending`` run did, and what is left in the outbox after it."""

    delivered: int
    retried: int
    dead: int
    pending: int
    dead_total: int
    unrouted: int
    elapsed_s: float

    @property
    def complete(self) -> bool:
        """Nothing is waiting any more (dead letters may remain; see ``dead_total``)."""
        return self.pending == 0


@dataclass(frozen=True, slots=True)
class OutboxMessage:
    """One outbox row as the CLI shows it (no payload: it may hold personal data)."""

    webhook_id: str
    decision_id: str
    endpoint: str
    status: str
    attempts: int
    last_status: int | None
    last_error: str | None
    call_id: str
    action: str
    rule: str
    created_at: float
    updated_at: float
    next_attempt_at: float
