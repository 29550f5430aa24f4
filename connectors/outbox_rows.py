"""The decisions table and the outbox's, and the ids of what they hold: a decision's id comes
from the decision itself (call, rule, time, policy hash) and a message's from the decision
and its endpoint, so enqueueing the same decision twice adds nothing and a receiver
deduplicates on ``webhook-id``.

Every decision callsense makes is one row of ``callsense_decisions``: the calls store
writes a stored call's decisions there (``seq``: their order in the call) and the outbox
adds a message row per interested endpoint referring to it; a CLI run without a store
writes the decision rows alone. Databases from before this layout had a second table
(``callsense_call_decisions``); ``upgrade`` moves its rows here once.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    Column,
    Engine,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    inspect,
    text,
)

from callsense.connectors.storage import UPGRADES, metadata
from callsense.rules.model import Decision

__all__ = [
    "DEAD",
    "DELIVERED",
    "PENDING",
    "DeliveryReport",
    "OutboxMessage",
    "decision_id",
    "decision_row",
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
    Column("seq", Integer, nullable=True),  # order within a stored call; None: no stored call
)
Index("ix_callsense_decisions_call_seq", decisions_table.c.call_id, decisions_table.c.seq)

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


def decision_id(decision: Decision) -> str:
    """Stable id of a decision: the same call, rule, time and policy version give the same id."""
    parts = (decision.call_id, decision.rule, decision.at, decision.policy_hash)
    key = "\x1f".join(dumps(v) for v in parts)
    return "dec_" + hashlib.sha256(key.encode()).hexdigest()[:32]


def decision_row(decision: Decision, *, now: float, seq: int | None = None) -> dict[str, Any]:
    """The ``callsense_decisions`` row of ``decision``."""
    return {
        "id": decision_id(decision),
        "call_id": decision.call_id,
        "policy": decision.policy,
        "rule": decision.rule,
        "action": decision.action,
        "at": str(decision.at),
        "policy_hash": decision.policy_hash,
        "body": dumps(decision.to_dict()),
        "created_at": now,
        "seq": seq,
    }


def upgrade(engine: Engine) -> None:
    """Bring an older database to the one-table layout: add ``seq``, move the rows of the
    old ``callsense_call_decisions`` table here (keeping their order), drop it."""
    names = set(inspect(engine).get_table_names())
    columns = {c["name"] for c in inspect(engine).get_columns(decisions_table.name)}
    with engine.begin() as conn:
        if "seq" not in columns:
            conn.execute(text(f"ALTER TABLE {decisions_table.name} ADD COLUMN seq INTEGER"))
        if "callsense_call_decisions" not in names:
            return
        old = conn.execute(
            text("SELECT call_id, seq, body FROM callsense_call_decisions ORDER BY call_id, seq")
        ).all()
        now = time.time()
        for call_id, seq, body in old:
            data = json.loads(body)
            row = decision_row(Decision.from_dict({**data, "call_id": call_id}), now=now, seq=seq)
            found = conn.execute(
                decisions_table.update().where(decisions_table.c.id == row["id"]).values(seq=seq)
            ).rowcount
            if not found:
                conn.execute(decisions_table.insert().values(**row))
        conn.execute(text("DROP TABLE callsense_call_decisions"))


UPGRADES.append(upgrade)


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
