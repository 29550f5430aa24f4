"""``callsense webhooks failed / retry / deliver`` on a real outbox and receiver."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from callsense.connectors.cli import app
from callsense.connectors.outbox import Outbox
from callsense.connectors.storage import make_engine
from callsense.connectors.webhooks import WebhooksConfig

from .conftest import Receiver, Reply
from .helpers import decision, endpoint


def test_failed_retry_deliver(tmp_path: Path, receiver: Receiver, secret: str) -> None:
    db = f"sqlite:///{tmp_path / 'cs.db'}"
    config = tmp_path / "callsense.yaml"
    config.write_text(
        f"webhooks:\n  - name: tickets\n    url: {receiver.url}/hook\n    secret: {secret}\n"
        "    actions: [escalate]\n"
    )
    ep = endpoint(receiver.url + "/hook", secret)
    engine = make_engine(db)
    (wid,) = Outbox(engine).enqueue(decision(3), [ep])
    receiver.script = [Reply(404)]
    runner = CliRunner()

    first = runner.invoke(app, ["webhooks", "deliver", "-c", str(config), "--db", db])
    assert first.exit_code == 0, first.output
    assert "1 dead-lettered" in first.output

    listed = runner.invoke(app, ["webhooks", "failed", "--db", db], env={"COLUMNS": "250"})
    assert listed.exit_code == 0
    assert wid in listed.output and "404" in listed.output and "call-00003" in listed.output

    assert runner.invoke(app, ["webhooks", "retry", "msg_nope", "--db", db]).exit_code == 1
    redo = runner.invoke(app, ["webhooks", "retry", wid, "--db", db])
    assert redo.exit_code == 0 and "queued again" in redo.output
    second = runner.invoke(app, ["webhooks", "deliver", "-c", str(config), "--db", db])
    assert second.exit_code == 0 and "1 delivered" in second.output
    assert receiver.ids() == [wid, wid]
    assert "no dead letters" in runner.invoke(app, ["webhooks", "failed", "--db", db]).output

    bad = tmp_path / "bad.yaml"
    bad.write_text(f"webhooks:\n  - name: t\n    url: gopher://x/\n    secret: {secret}\n")
    broken = runner.invoke(app, ["webhooks", "deliver", "-c", str(bad), "--db", db])
    assert broken.exit_code == 2
    engine.dispose()


def test_a_dead_route_is_listed_retried_and_delivered(tmp_path: Path, receiver: Receiver) -> None:
    db = f"sqlite:///{tmp_path / 'cs.db'}"
    config = tmp_path / "callsense.yaml"
    config.write_text(f"routing:\n  - name: cc\n    kind: http\n    url: {receiver.url}/route\n")
    cfg = WebhooksConfig.from_file(config)
    engine = make_engine(db)
    route = decision(4, action="route", params={"queue": "priority"})
    (wid,) = Outbox(engine).enqueue(route, cfg.endpoints())
    receiver.default = Reply(404)
    runner = CliRunner()
    first = runner.invoke(app, ["webhooks", "deliver", "-c", str(config), "--db", db])
    assert first.exit_code == 0 and "1 dead-lettered" in first.output, first.output
    listed = runner.invoke(app, ["webhooks", "failed", "--db", db], env={"COLUMNS": "250"})
    assert wid in listed.output and "route:cc" in listed.output and "404" in listed.output
    receiver.default = Reply(200)
    assert runner.invoke(app, ["webhooks", "retry", wid, "--db", db]).exit_code == 0
    second = runner.invoke(app, ["webhooks", "deliver", "-c", str(config), "--db", db])
    assert second.exit_code == 0 and "1 delivered" in second.output, second.output
    assert [r.path for r in receiver.requests] == ["/route", "/route"]
    engine.dispose()
