"""``kill -9`` of the delivering process mid-delivery loses nothing (a real subprocess)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from standardwebhooks.webhooks import Webhook

from callsense.connectors.outbox import Outbox
from callsense.connectors.outbox_rows import decision_id, webhook_id
from callsense.connectors.storage import make_engine

from .conftest import ROOT, Receiver, Reply
from .helpers import decision, endpoint

N = 300


def _cli(config: Path, db_url: str, *args: str) -> list[str]:
    return [
        sys.executable,
        "-c",
        "from callsense.connectors.cli import main; main()",
        "webhooks",
        *args,
        "--config",
        str(config),
        "--db",
        db_url,
    ]


@pytest.mark.slow
def test_kill_9_mid_delivery_then_restart_delivers_everything(
    db_url: str, receiver: Receiver, secret: str, tmp_path: Path
) -> None:
    receiver.default = Reply(200, delay_s=0.02)  # slow enough that requests are in flight
    config = tmp_path / "callsense.yaml"
    config.write_text(
        f"""\
webhooks:
  - name: tickets
    url: {receiver.url}/hook
    secret: {secret}
    actions: [escalate]
    timeout_s: 2
    retry: {{schedule_s: [0.1, 0.2], max_attempts: 20}}
outbox:
  lease_s: 1
  concurrency: 8
"""
    )
    ep = endpoint(receiver.url + "/hook", secret)
    engine = make_engine(db_url)
    outbox = Outbox(engine)
    outbox.enqueue_many([decision(i) for i in range(N)], [ep])
    expected = {webhook_id(decision_id(decision(i)), "tickets") for i in range(N)}

    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    child = subprocess.Popen(
        _cli(config, db_url, "deliver", "--deadline", "60"),
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 60
    while len(receiver.requests) < N // 4:
        assert child.poll() is None, child.communicate()
        assert time.monotonic() < deadline, "the child never started delivering"
        time.sleep(0.01)
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=10)
    assert child.returncode == -signal.SIGKILL
    left = outbox.counts().get("pending", 0)
    assert left > 0, "killed too late: nothing was left in flight"

    again = subprocess.run(
        _cli(config, db_url, "deliver", "--deadline", "60"),
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert again.returncode == 0, again.stderr
    assert "0 still pending" in again.stdout
    assert outbox.counts() == {"delivered": N}
    got = receiver.ids()
    assert set(got) == expected  # every decision, each webhook-id at least once
    verifier = Webhook(secret)
    for req in receiver.requests:
        verifier.verify(req.body, req.headers)
    engine.dispose()
