"""APScheduler jobs survive a restart: an SLA follow-up scheduled before fires after."""

from __future__ import annotations

import json
import time

from standardwebhooks.webhooks import Webhook

from callsense.connectors.outbox import Outbox
from callsense.connectors.scheduler import CallsenseScheduler
from callsense.connectors.storage import make_engine

from .conftest import Receiver
from .helpers import decision, endpoint


def wait_for(pred, timeout: float = 10.0) -> bool:  # type: ignore[no-untyped-def]
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.05)
    return False


def test_sla_followup_survives_restart_and_respects_resolution(
    db_url: str, receiver: Receiver, secret: str
) -> None:
    ep = endpoint(receiver.url, secret)
    engine = make_engine(db_url)
    first = CallsenseScheduler(Outbox(engine, [ep]), [ep], delivery_interval_s=0.2)
    first.start()
    unresolved = decision(1, priority="normal")
    resolved = decision(2, priority="normal")
    job_a = first.schedule_sla_followup(unresolved, after_s=1.5)
    job_b = first.schedule_sla_followup(resolved, after_s=1.5)
    assert first.schedule_sla_followup(unresolved, after_s=1.5) == job_a  # one job per decision
    first.shutdown()  # "callsense serve" stops before the deadline
    assert {j.id for j in first.jobs()} >= {job_a, job_b}
    first.mark_resolved("call-00002")
    engine.dispose()

    engine = make_engine(db_url)  # a new process, the same database
    second = CallsenseScheduler(Outbox(engine, [ep]), [ep], delivery_interval_s=0.2)
    try:
        assert {j.id for j in second.jobs()} >= {job_a, job_b}
        second.start()
        assert wait_for(lambda: len(receiver.requests) >= 1)
        assert wait_for(lambda: job_a not in {j.id for j in second.jobs()})
        time.sleep(0.5)  # room for a wrong second follow-up to show up
    finally:
        second.shutdown()
        engine.dispose()
    (req,) = receiver.requests
    data = Webhook(secret).verify(req.body, req.headers)["data"]
    assert data["call_id"] == "call-00001"
    assert data["rule"] == "angry_twice.sla_followup"
    assert data["params"]["priority"] == "urgent"
    assert json.loads(req.body)["type"] == "callsense.decision.escalate"


def test_retention_purges_old_delivered_but_keeps_dead_letters(
    db_url: str, receiver: Receiver, secret: str
) -> None:
    ep = endpoint(receiver.url, secret)
    engine = make_engine(db_url)
    outbox = Outbox(engine, [ep])
    outbox.enqueue_many([decision(i) for i in range(3)], [ep])
    from .conftest import Reply

    receiver.script = [Reply(400)]
    outbox.deliver_pending(3)
    assert outbox.counts() == {"delivered": 2, "dead": 1}
    assert outbox.purge(older_than_s=3600) == 0  # too recent
    time.sleep(0.05)
    assert outbox.purge(older_than_s=0.01) == 2
    assert outbox.counts() == {"dead": 1}
    engine.dispose()
