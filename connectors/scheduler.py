"""Time-based work that must survive a restart: delivery retries, SLA follow-ups, retention.

APScheduler 3.x keeps its jobs in the same database as the outbox (``SQLAlchemyJobStore``),
so an SLA follow-up scheduled for "30 minutes from now" still fires after ``callsense serve``
restarts. Jobs name module-level functions (the job store pickles a reference and the
decision, never a secret); at run time they act through the process's active
``CallsenseScheduler``, which holds the outbox and its endpoints.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

from apscheduler.job import Job
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from sqlalchemy import Column, Engine, Float, String, Table, select

from callsense.connectors.endpoint import Endpoint
from callsense.connectors.outbox import Outbox
from callsense.connectors.outbox_rows import decision_id, plain_decision
from callsense.connectors.storage import create_schema, metadata
from callsense.rules.model import Decision

__all__ = ["CallsenseScheduler", "resolutions_table"]

log = logging.getLogger(__name__)

JOBS_TABLE = "callsense_jobs"
DELIVERY_JOB = "callsense:deliver"
RETENTION_JOB = "callsense:retention"

resolutions_table = Table(
    "callsense_call_resolutions",
    metadata,
    Column("call_id", String(255), primary_key=True),
    Column("resolved_at", Float, nullable=False),
)

_active: CallsenseScheduler | None = None


class CallsenseScheduler:
    """One per process: owns the APScheduler instance and the outbox its jobs use."""

    def __init__(
        self,
        outbox: Outbox,
        endpoints: Sequence[Endpoint] = (),
        *,
        delivery_interval_s: float = 5.0,
        delivery_deadline_s: float = 30.0,
        retention_days: float = 30.0,
        retention_interval_s: float = 3600.0,
        retention_hooks: Sequence[Callable[[], object]] = (),
    ) -> None:
        self.outbox = outbox
        self.engine: Engine = outbox.engine
        self.endpoints = list(endpoints)
        self.delivery_interval_s = delivery_interval_s
        self.delivery_deadline_s = delivery_deadline_s
        self.retention_days = retention_days
        self.retention_interval_s = retention_interval_s
        # more clean-up on the same schedule (the service purges expired calls here)
        self.retention_hooks = list(retention_hooks)
        create_schema(self.engine)
        self.scheduler = BackgroundScheduler(
            jobstores={"default": SQLAlchemyJobStore(engine=self.engine, tablename=JOBS_TABLE)},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
            timezone=dt.UTC,
        )

    def start(self) -> None:
        """Start jobs; recurring ones are (re)registered, stored one-off jobs resume."""
        global _active
        _active = self
        self.scheduler.start()
        self.scheduler.add_job(
            "callsense.connectors.scheduler:_deliver_tick",
            "interval",
            seconds=self.delivery_interval_s,
            id=DELIVERY_JOB,
            replace_existing=True,
        )
        self.scheduler.add_job(
            "callsense.connectors.scheduler:_retention_tick",
            "interval",
            seconds=self.retention_interval_s,
            id=RETENTION_JOB,
            replace_existing=True,
        )

    def shutdown(self, wait: bool = True) -> None:
        global _active
        if self.scheduler.running:
            self.scheduler.shutdown(wait=wait)
        if _active is self:
            _active = None

    def jobs(self) -> list[Job]:
        """Stored jobs, also when the scheduler is not running."""
        if self.scheduler.running:
            return list(self.scheduler.get_jobs())
        store = SQLAlchemyJobStore(engine=self.engine, tablename=JOBS_TABLE)
        return list(store.get_all_jobs())

    def schedule_sla_followup(
        self, decision: Decision, after_s: float, *, priority: str = "urgent"
    ) -> str:
        """If the call is not marked resolved within ``after_s``, re-escalate at ``priority``.

        Scheduling the same decision twice keeps one job (its id is the decision's).
        """
        d = plain_decision(decision.to_dict())  # the job store keeps plain JSON
        job_id = f"sla:{decision_id(decision)}"
        run_at = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=after_s)
        self.scheduler.add_job(
            "callsense.connectors.scheduler:_sla_followup",
            "date",
            run_date=run_at,
            args=[d, float(after_s), priority],
            id=job_id,
            replace_existing=True,
        )
        log.info("SLA follow-up %s for call %s in %.0fs", job_id, d.get("call_id"), after_s)
        return job_id

    def mark_resolved(self, call_id: str) -> None:
        """The call's issue is handled: pending SLA follow-ups for it will do nothing."""
        with self.engine.begin() as conn:
            exists = conn.execute(
                select(resolutions_table.c.call_id).where(resolutions_table.c.call_id == call_id)
            ).first()
            if not exists:
                conn.execute(
                    resolutions_table.insert().values(call_id=call_id, resolved_at=time.time())
                )

    def is_resolved(self, call_id: str) -> bool:
        with self.engine.connect() as conn:
            return (
                conn.execute(
                    select(resolutions_table.c.call_id).where(
                        resolutions_table.c.call_id == call_id
                    )
                ).first()
                is not None
            )


def _deliver_tick() -> None:
    if _active is None:
        return
    report = _active.outbox.deliver_pending(_active.delivery_deadline_s)
    if report.delivered or report.dead:
        log.info(
            "delivery tick: %d delivered, %d dead, %d pending",
            report.delivered,
            report.dead,
            report.pending,
        )


def _retention_tick() -> None:
    if _active is None:
        return
    removed = _active.outbox.purge(_active.retention_days * 86400)
    if removed:
        log.info("retention: removed %d delivered webhooks", removed)
    for hook in _active.retention_hooks:
        try:
            hook()
        except Exception as exc:
            log.warning("retention hook failed: %s", type(exc).__name__)


def _sla_followup(decision: dict[str, Any], after_s: float, priority: str) -> None:
    if _active is None:
        log.warning(
            "SLA follow-up for call %s fired with no active runtime", decision.get("call_id")
        )
        return
    call_id = str(decision.get("call_id", ""))
    if _active.is_resolved(call_id):
        log.info("SLA follow-up for call %s: resolved, nothing to do", call_id)
        return
    params = dict(decision.get("params") or {})
    params.update(priority=priority, reason=f"not resolved within {after_s:g}s")
    original = Decision.from_dict(decision)
    followup = replace(
        original, action="escalate", rule=f"{original.rule}.sla_followup", params=params
    )
    ids = _active.outbox.enqueue(followup, _active.endpoints)
    log.info("SLA follow-up for call %s: re-escalated (%d webhooks)", call_id, len(ids))
