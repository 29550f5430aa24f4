"""The durable outbox: a decision is in the database before anything is sent.

``enqueue`` writes the decision and one message per interested endpoint in one transaction
(the rendered body is stored, so every retry sends the same bytes under the same
``webhook-id``). ``deliver_pending`` leases due messages, sends them, and records each
outcome; a process killed mid-send leaves its lease to expire and the next deliverer sends
again — at-least-once, receivers deduplicate on ``webhook-id``. Ids are derived from the
decision itself (call, rule, time, policy hash), so enqueueing the same decision twice —
a replay re-run, a crash between enqueue and exit — adds nothing. Routing targets are
endpoints too (``connectors.route_delivery``): a ``route`` decision's message is the
decision, carried out by the platform adapter with the same leases, retries and dead letters.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    Engine,
    Table,
    bindparam,
    delete,
    exists,
    func,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite

from callsense.connectors.calls_tables import calls_table
from callsense.connectors.endpoint import AttemptResult, Endpoint, Outcome, RouteContext, Sender
from callsense.connectors.outbox_rows import (
    DEAD,
    DELIVERED,
    PENDING,
    DeliveryReport,
    OutboxMessage,
    decision_row,
    decisions_table,
    dumps,
    outbox_table,
    plain_decision,
    webhook_id,
)
from callsense.connectors.storage import create_schema, make_engine
from callsense.connectors.webhooks import WebhooksConfig
from callsense.rules.model import Decision

__all__ = ["Outbox", "deliver_decisions"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class _Claimed:
    webhook_id: str
    endpoint: str
    payload: str
    content_type: str
    attempts: int


class Outbox:
    """Durable webhook outbox over one SQLAlchemy engine (SQLite or PostgreSQL)."""

    def __init__(
        self,
        engine: Engine,
        endpoints: Sequence[Endpoint] = (),
        *,
        lease_s: float = 60.0,
        concurrency: int = 16,
    ) -> None:
        self.engine = engine
        self.lease_s = lease_s
        self.concurrency = concurrency
        self._endpoints: dict[str, Endpoint] = {}
        self._postgres = engine.dialect.name == "postgresql"
        create_schema(engine)
        for ep in endpoints:
            self.add_endpoint(ep)

    def add_endpoint(self, endpoint: Endpoint) -> None:
        """Make ``endpoint`` known for delivery (its messages are otherwise left pending)."""
        self._endpoints[endpoint.name] = endpoint

    # -- writing ---------------------------------------------------------------------------

    def enqueue(
        self,
        decision: Decision,
        endpoints: Sequence[Endpoint],
        context: RouteContext | None = None,
    ) -> list[str]:
        """Commit ``decision`` and its messages; return the webhook-ids of the interested ones.
        ``context``: the live call's platform ids, for routing targets."""
        return self.enqueue_many([decision], endpoints, context)

    def enqueue_many(
        self,
        decisions: Iterable[Decision],
        endpoints: Sequence[Endpoint],
        context: RouteContext | None = None,
    ) -> list[str]:
        """Like ``enqueue`` for many decisions in one transaction (a replay's batch)."""
        context = context or RouteContext()
        for ep in endpoints:
            if ep.name not in self._endpoints:
                self.add_endpoint(ep)
        now = time.time()
        enqueued_at = dt.datetime.fromtimestamp(now, dt.UTC).isoformat().replace("+00:00", "Z")
        dec_rows: list[dict[str, Any]] = []
        msg_rows: list[dict[str, Any]] = []
        for decision in decisions:
            d = plain_decision(decision.to_dict())
            row = decision_row(decision, now=now)
            did = row["id"]
            dec_rows.append(row)
            for ep in endpoints:
                if not ep.wants(decision):
                    continue
                wid = webhook_id(did, ep.name)
                msg = ep.message(
                    d, context, webhook_id=wid, decision_id=did, enqueued_at=enqueued_at
                )
                msg_rows.append(
                    {
                        "webhook_id": wid,
                        "decision_id": did,
                        "endpoint": ep.name,
                        "payload": dumps(msg.payload),
                        "content_type": msg.content_type,
                        "status": PENDING,
                        "attempts": 0,
                        "next_attempt_at": now,
                        "lease_until": 0.0,
                        "created_at": now,
                        "updated_at": now,
                    }
                )
        if not dec_rows:
            return []
        with self.engine.begin() as conn:
            conn.execute(self._insert_ignore(decisions_table, "id"), dec_rows)
            if msg_rows:
                conn.execute(self._insert_ignore(outbox_table, "webhook_id"), msg_rows)
        return [r["webhook_id"] for r in msg_rows]

    def _insert_ignore(self, table: Table, key: str) -> Any:
        dialect = postgresql if self._postgres else sqlite
        return dialect.insert(table).on_conflict_do_nothing(index_elements=[key])

    # -- delivering ------------------------------------------------------------------------

    def deliver_pending(self, deadline_s: float) -> DeliveryReport:
        """Send what is due, retrying as scheduled, until all is sent or ``deadline_s`` passes.

        Blocking; from async code use ``adeliver_pending``.
        """
        return asyncio.run(self.adeliver_pending(deadline_s))

    async def adeliver_pending(self, deadline_s: float) -> DeliveryReport:
        start = time.monotonic()
        end = start + max(0.0, deadline_s)
        delivered = retried = dead = 0
        senders: dict[str, Sender] = {}
        sem = asyncio.Semaphore(self.concurrency)

        async def attempt(msg: _Claimed) -> tuple[_Claimed, AttemptResult]:
            sender = senders.get(msg.endpoint)
            if sender is None:  # opened on first use: a round may touch few endpoints
                sender = senders[msg.endpoint] = self._endpoints[msg.endpoint].sender(
                    self.concurrency
                )
            async with sem:
                result = await sender.send(msg.webhook_id, msg.payload, msg.content_type)
            log.info(
                "webhook %s to %s: %s%s",
                msg.webhook_id,
                msg.endpoint,
                result.outcome.value,
                f" ({result.error})" if result.error else "",
            )
            return msg, result

        try:
            while self._endpoints:
                batch = await asyncio.to_thread(self._claim, self.concurrency * 4)
                if batch:
                    results = await asyncio.gather(*(attempt(m) for m in batch))
                    d, r, x = await asyncio.to_thread(self._record, results)
                    delivered, retried, dead = delivered + d, retried + r, dead + x
                    if time.monotonic() >= end:
                        break
                    continue
                due = await asyncio.to_thread(self._next_due)
                remaining = end - time.monotonic()
                if due is None or remaining <= 0:
                    break
                wait = due - time.time()
                if wait > remaining:
                    break
                await asyncio.sleep(min(max(wait, 0.005), 0.5))
        finally:
            for sender in senders.values():
                await sender.aclose()
        counts = await asyncio.to_thread(self.counts)
        unrouted = await asyncio.to_thread(self._count_unrouted)
        return DeliveryReport(
            delivered=delivered,
            retried=retried,
            dead=dead,
            pending=counts.get(PENDING, 0),
            dead_total=counts.get(DEAD, 0),
            unrouted=unrouted,
            elapsed_s=time.monotonic() - start,
        )

    def _claim(self, limit: int) -> list[_Claimed]:
        """Lease up to ``limit`` due messages so no other deliverer sends them meanwhile."""
        t = outbox_table
        now = time.time()
        query = (
            select(t.c.webhook_id, t.c.endpoint, t.c.payload, t.c.content_type, t.c.attempts)
            .where(
                t.c.status == PENDING,
                t.c.next_attempt_at <= now,
                t.c.lease_until <= now,
                t.c.endpoint.in_(list(self._endpoints)),
            )
            .order_by(t.c.next_attempt_at)
            .limit(limit)
        )
        if self._postgres:
            query = query.with_for_update(skip_locked=True)
        with self.engine.begin() as conn:
            rows = conn.execute(query).all()
            if rows:
                conn.execute(
                    update(t)
                    .where(t.c.webhook_id.in_([r.webhook_id for r in rows]))
                    .values(lease_until=now + self.lease_s)
                )
        return [_Claimed(*row) for row in rows]

    def _record(self, results: Sequence[tuple[_Claimed, AttemptResult]]) -> tuple[int, int, int]:
        now = time.time()
        rows = []
        counts = {Outcome.DELIVERED: 0, Outcome.RETRY: 0, Outcome.DEAD: 0}
        for msg, res in results:
            ep = self._endpoints[msg.endpoint]
            attempts = msg.attempts + 1
            outcome = res.outcome
            error = res.error
            if outcome is Outcome.RETRY and attempts >= ep.retry.attempts:
                outcome = Outcome.DEAD
                error = f"gave up after {attempts} attempts; last: {res.error}"
            counts[outcome] += 1
            status = {Outcome.DELIVERED: DELIVERED, Outcome.RETRY: PENDING, Outcome.DEAD: DEAD}
            next_at = (
                now + ep.retry.delay(attempts, res.retry_after_s)
                if outcome is Outcome.RETRY
                else now
            )
            rows.append(
                {
                    "b_id": msg.webhook_id,
                    "b_status": status[outcome],
                    "b_attempts": attempts,
                    "b_next": next_at,
                    "b_last_status": res.status,
                    "b_last_error": error,
                    "b_now": now,
                    "b_delivered": now if outcome is Outcome.DELIVERED else None,
                }
            )
        t = outbox_table
        stmt = (
            update(t)
            .where(t.c.webhook_id == bindparam("b_id"), t.c.status == PENDING)
            .values(
                status=bindparam("b_status"),
                attempts=bindparam("b_attempts"),
                next_attempt_at=bindparam("b_next"),
                lease_until=0.0,
                last_status=bindparam("b_last_status"),
                last_error=bindparam("b_last_error"),
                updated_at=bindparam("b_now"),
                delivered_at=bindparam("b_delivered"),
            )
        )
        with self.engine.begin() as conn:
            conn.execute(stmt, rows)
        return counts[Outcome.DELIVERED], counts[Outcome.RETRY], counts[Outcome.DEAD]

    def _next_due(self) -> float | None:
        """Wall time at which the next known-endpoint message becomes sendable, if any."""
        t = outbox_table
        now = time.time()
        base = (t.c.status == PENDING, t.c.endpoint.in_(list(self._endpoints)))
        with self.engine.connect() as conn:
            free = conn.execute(
                select(func.min(t.c.next_attempt_at)).where(*base, t.c.lease_until <= now)
            ).scalar()
            leased = conn.execute(
                select(func.min(t.c.lease_until)).where(*base, t.c.lease_until > now)
            ).scalar()
        candidates = [v for v in (free, leased) if v is not None]
        return min(candidates) if candidates else None

    # -- inspecting ------------------------------------------------------------------------

    def counts(self) -> dict[str, int]:
        """Messages per status (``pending``, ``delivered``, ``dead``)."""
        t = outbox_table
        with self.engine.connect() as conn:
            rows = conn.execute(select(t.c.status, func.count()).group_by(t.c.status)).all()
        return {status: int(n) for status, n in rows}

    def _count_unrouted(self) -> int:
        t = outbox_table
        with self.engine.connect() as conn:
            return int(
                conn.execute(
                    select(func.count()).where(
                        t.c.status == PENDING, t.c.endpoint.not_in(list(self._endpoints))
                    )
                ).scalar_one()
            )

    def messages(self, status: str | None = None, limit: int = 100) -> list[OutboxMessage]:
        """Newest first; ``status`` filters (``dead`` lists the dead letters)."""
        t, d = outbox_table, decisions_table
        query = (
            select(
                t.c.webhook_id,
                t.c.decision_id,
                t.c.endpoint,
                t.c.status,
                t.c.attempts,
                t.c.last_status,
                t.c.last_error,
                d.c.call_id,
                d.c.action,
                d.c.rule,
                t.c.created_at,
                t.c.updated_at,
                t.c.next_attempt_at,
            )
            .join(d, d.c.id == t.c.decision_id)
            .order_by(t.c.updated_at.desc())
            .limit(limit)
        )
        if status is not None:
            query = query.where(t.c.status == status)
        with self.engine.connect() as conn:
            return [OutboxMessage(*row) for row in conn.execute(query).all()]

    def failed(self, limit: int = 100) -> list[OutboxMessage]:
        return self.messages(DEAD, limit)

    def retry(self, wid: str) -> bool:
        """Put a dead letter back in line with a fresh attempt budget; False if not dead."""
        t = outbox_table
        now = time.time()
        with self.engine.begin() as conn:
            result = conn.execute(
                update(t)
                .where(t.c.webhook_id == wid, t.c.status == DEAD)
                .values(
                    status=PENDING, attempts=0, next_attempt_at=now, lease_until=0.0, updated_at=now
                )
            )
        return bool(result.rowcount)

    def purge(self, older_than_s: float) -> int:
        """Retention: drop delivered messages older than this, then decisions left without
        any (unless a stored call holds them: calls have their own retention).

        Dead letters are kept until someone re-drives or inspects them.
        """
        t, d = outbox_table, decisions_table
        cutoff = time.time() - older_than_s
        with self.engine.begin() as conn:
            gone = conn.execute(
                delete(t).where(t.c.status == DELIVERED, t.c.delivered_at < cutoff)
            ).rowcount
            conn.execute(
                delete(d).where(
                    d.c.created_at < cutoff,
                    ~exists().where(t.c.decision_id == d.c.id),
                    ~exists().where(calls_table.c.id == d.c.call_id),
                )
            )
        return int(gone or 0)


def deliver_decisions(
    decisions: Iterable[Decision],
    config: WebhooksConfig,
    db_url: str | None = None,
    deadline_s: float | None = None,
) -> DeliveryReport:
    """What ``callsense analyze/replay --config`` call before exiting.

    Commits every decision to the outbox first, then delivers (this run's and any earlier
    leftovers) until all are sent or the deadline (``config.outbox.deadline_s`` by default)
    passes; what is still pending stays in the outbox for ``callsense serve`` or
    ``callsense webhooks deliver``.
    """
    engine = make_engine(db_url or config.outbox.db_url)
    try:
        endpoints = config.endpoints()
        outbox = Outbox(
            engine,
            endpoints,
            lease_s=config.outbox.lease_s,
            concurrency=config.outbox.concurrency,
        )
        outbox.enqueue_many(decisions, endpoints)
        return outbox.deliver_pending(
            config.outbox.deadline_s if deadline_s is None else deadline_s
        )
    finally:
        engine.dispose()
