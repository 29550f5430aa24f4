"""The durable outbox against a real receiver, on SQLite and on PostgreSQL."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter

import pytest
from sqlalchemy import Engine
from standardwebhooks.webhooks import Webhook

from callsense.connectors.outbox import Outbox, deliver_decisions
from callsense.connectors.outbox_rows import decision_id, webhook_id
from callsense.connectors.storage import make_engine
from callsense.connectors.webhooks import WebhooksConfig

from .conftest import Receiver, Reply, free_port
from .helpers import decision, endpoint


@pytest.fixture
def engine(db_url: str) -> Engine:
    eng = make_engine(db_url)
    yield eng
    eng.dispose()


def test_enqueue_commits_first_and_is_idempotent(engine: Engine, secret: str) -> None:
    ep = endpoint("http://127.0.0.1:9/never", secret)
    outbox = Outbox(engine, [ep])
    ids = outbox.enqueue(decision(1), [ep])
    assert ids == [webhook_id(decision_id(decision(1)), "tickets")]
    assert outbox.enqueue(decision(1), [ep]) == ids  # same decision again: same id, no new row
    assert outbox.enqueue(decision(2, action="tag"), [ep]) == []  # filtered by actions
    # a fresh Outbox on the same database (another process, after a crash) sees it
    assert Outbox(engine).counts() == {"pending": 1}


def test_delivers_signed_generic_event(engine: Engine, receiver: Receiver, secret: str) -> None:
    ep = endpoint(receiver.url + "/hook", secret)
    outbox = Outbox(engine, [ep])
    (wid,) = outbox.enqueue(decision(7, priority="urgent"), [ep])
    report = outbox.deliver_pending(5)
    assert (report.delivered, report.pending, report.dead) == (1, 0, 0)
    (req,) = receiver.requests
    assert (req.method, req.path, req.headers["webhook-id"]) == ("POST", "/hook", wid)
    event = Webhook(secret).verify(req.body, req.headers)
    assert event["type"] == "callsense.decision.escalate"
    assert event["data"]["call_id"] == "call-00007"
    assert event["data"]["params"]["priority"] == "urgent"
    assert outbox.deliver_pending(1).delivered == 0  # delivered once, not again


def test_5xx_is_retried_with_the_same_id_and_a_fresh_signature(
    engine: Engine, receiver: Receiver, secret: str
) -> None:
    receiver.script = [Reply(503), Reply(500)]
    ep = endpoint(receiver.url, secret)
    outbox = Outbox(engine, [ep])
    (wid,) = outbox.enqueue(decision(), [ep])
    report = outbox.deliver_pending(5)
    assert (report.delivered, report.retried, report.pending) == (1, 2, 0)
    assert receiver.ids() == [wid, wid, wid]
    assert len({r.body for r in receiver.requests}) == 1  # the same bytes every time
    for r in receiver.requests:
        Webhook(secret).verify(r.body, r.headers)
    gaps = [b.at - a.at for a, b in zip(receiver.requests, receiver.requests[1:], strict=False)]
    assert gaps[0] >= 0.05 * 0.9 and gaps[1] >= 0.1 * 0.9  # the schedule, minus jitter


def test_429_retry_after_is_honoured(engine: Engine, receiver: Receiver, secret: str) -> None:
    receiver.script = [Reply(429, {"Retry-After": "1"})]
    ep = endpoint(receiver.url, secret)
    outbox = Outbox(engine, [ep])
    outbox.enqueue(decision(), [ep])
    report = outbox.deliver_pending(5)
    assert report.delivered == 1
    first, second = receiver.requests
    assert second.at - first.at >= 0.95  # not the 0.05 s the schedule alone would give


def test_4xx_is_dead_lettered_at_once_and_can_be_redriven(
    engine: Engine, receiver: Receiver, secret: str
) -> None:
    receiver.script = [Reply(422)]
    ep = endpoint(receiver.url, secret)
    outbox = Outbox(engine, [ep])
    (wid,) = outbox.enqueue(decision(), [ep])
    report = outbox.deliver_pending(3)
    assert (report.delivered, report.dead, report.dead_total, report.pending) == (0, 1, 1, 0)
    assert len(receiver.requests) == 1
    (dead,) = outbox.failed()
    assert (dead.webhook_id, dead.last_status, dead.call_id) == (wid, 422, "call-00000")
    assert "not retryable" in (dead.last_error or "")
    assert outbox.retry(wid) and not outbox.retry(wid)
    assert outbox.deliver_pending(3).delivered == 1
    assert receiver.ids() == [wid, wid]
    assert outbox.failed() == []


def test_connection_refused_retries_then_dead_letters(engine: Engine, secret: str) -> None:
    ep = endpoint(f"http://127.0.0.1:{free_port()}/", secret)
    outbox = Outbox(engine, [ep])
    outbox.enqueue(decision(), [ep])
    report = outbox.deliver_pending(5)
    assert (report.retried, report.dead, report.pending) == (3, 1, 0)
    (dead,) = outbox.failed()
    assert dead.attempts == 4 and "gave up after 4 attempts" in (dead.last_error or "")
    assert "ConnectError" in (dead.last_error or "")


def test_slow_receiver_times_out_and_is_retried(
    engine: Engine, receiver: Receiver, secret: str
) -> None:
    receiver.script = [Reply(200, delay_s=1.0)]
    ep = endpoint(receiver.url, secret, timeout_s=0.3)
    outbox = Outbox(engine, [ep])
    (wid,) = outbox.enqueue(decision(), [ep])
    report = outbox.deliver_pending(5)
    assert (report.retried, report.delivered) == (1, 1)
    assert receiver.ids() == [wid, wid]
    assert outbox.messages("delivered")[0].attempts == 2


def test_deadline_leaves_the_rest_pending(engine: Engine, secret: str) -> None:
    ep = endpoint(
        f"http://127.0.0.1:{free_port()}/",
        secret,
        retry={"schedule_s": [30], "max_attempts": 5},
    )
    outbox = Outbox(engine, [ep])
    outbox.enqueue(decision(), [ep])
    start = time.monotonic()
    report = outbox.deliver_pending(2)
    assert time.monotonic() - start < 1.5  # nothing due before the deadline: it returns early
    assert (report.retried, report.pending, report.complete) == (1, 1, False)


@pytest.mark.slow
def test_outage_during_1000_decisions_everything_arrives_after(db_url: str, secret: str) -> None:
    """The receiver is down while 1,000 decisions are enqueued and first tried; none lost."""
    port = free_port()
    cfg = WebhooksConfig.model_validate(
        {
            "webhooks": [
                {
                    "name": "tickets",
                    "url": f"http://127.0.0.1:{port}/hook",
                    "secret": secret,
                    "actions": ["escalate"],
                    "timeout_s": 2,
                    "retry": {"schedule_s": [0.2, 0.4, 0.8], "max_attempts": 1000},
                }
            ],
            "outbox": {"concurrency": 32},
        }
    )
    decisions = [decision(i) for i in range(1000)]
    started: list[Receiver] = []
    comes_back = threading.Timer(1.5, lambda: started.append(Receiver(port)))
    comes_back.start()  # down for the enqueue and the first attempts, back mid-delivery
    try:
        report = deliver_decisions(decisions, cfg, db_url, deadline_s=60)
        assert (report.pending, report.dead_total) == (0, 0)
        assert report.retried >= 1  # it really was down at first
        (receiver,) = started
        again = deliver_decisions(decisions[:10], cfg, db_url, deadline_s=5)  # a re-run
        assert (again.delivered, again.pending) == (0, 0)
        ids = Counter(receiver.ids())
        expected = {webhook_id(decision_id(d), "tickets") for d in decisions}
        assert set(ids) == expected
        assert max(ids.values()) == 1
        calls = {json.loads(r.body)["data"]["call_id"] for r in receiver.requests}
        assert len(calls) == 1000
    finally:
        comes_back.cancel()
        comes_back.join()
        for r in started:
            r.stop()
