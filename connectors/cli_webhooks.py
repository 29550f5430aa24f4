"""``callsense webhooks failed|retry|pending|deliver``: inspect and re-drive the outbox."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from callsense.connectors.outbox import Outbox
from callsense.connectors.outbox_rows import DeliveryReport, OutboxMessage
from callsense.connectors.storage import make_engine
from callsense.connectors.webhooks import WebhooksConfig
from callsense.core.errors import ConfigError

__all__ = ["print_report", "register"]

webhooks_app = typer.Typer(
    help="Inspect and re-drive webhook deliveries in the outbox.", no_args_is_help=True
)

ConfigOpt = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="YAML file with webhooks: (and outbox:) keys."),
]
DbOpt = Annotated[
    str | None,
    typer.Option(
        "--db", help="Database URL (default: outbox.db_url, $CALLSENSE_DB_URL, callsense.db)."
    ),
]


def register(app: typer.Typer) -> None:
    app.add_typer(webhooks_app, name="webhooks")


def _load(config: Path | None) -> WebhooksConfig:
    if config is None:
        return WebhooksConfig()
    try:
        return WebhooksConfig.from_file(config)
    except ConfigError as exc:
        Console(stderr=True).print(f"[red]config error[/red]\n{exc}", highlight=False)
        raise typer.Exit(2) from None


def _outbox(config: Path | None, db: str | None) -> tuple[Outbox, WebhooksConfig]:
    cfg = _load(config)
    engine = make_engine(db or cfg.outbox.db_url)
    outbox = Outbox(
        engine, cfg.endpoints(), lease_s=cfg.outbox.lease_s, concurrency=cfg.outbox.concurrency
    )
    return outbox, cfg


def _when(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S")


def _table(title: str, rows: list[OutboxMessage], *, show_next: bool = False) -> Table:
    table = Table(title=title)
    table.add_column("webhook-id", no_wrap=True)  # copied into `webhooks retry ID`
    for col in ("endpoint", "call", "action", "rule", "attempts", "last"):
        table.add_column(col)
    table.add_column("next attempt" if show_next else "updated")
    for m in rows:
        last = " ".join(x for x in (str(m.last_status or ""), m.last_error or "") if x)
        table.add_row(
            m.webhook_id,
            m.endpoint,
            m.call_id,
            m.action,
            m.rule,
            str(m.attempts),
            last,
            _when(m.next_attempt_at if show_next else m.updated_at),
        )
    return table


def print_report(report: DeliveryReport, console: Console | None = None) -> None:
    """One line on what a delivery run did and what is still waiting (for analyze/replay too)."""
    console = console or Console()
    console.print(
        f"webhooks: {report.delivered} delivered, {report.retried} retries scheduled, "
        f"{report.dead} dead-lettered in {report.elapsed_s:.1f}s; "
        f"{report.pending} still pending, {report.dead_total} dead letters in the outbox",
        highlight=False,
        soft_wrap=True,
    )
    if report.unrouted:
        console.print(
            f"[yellow]{report.unrouted} pending messages are for endpoints not in this config"
            "[/yellow]"
        )
    if report.dead_total:
        console.print("inspect with `callsense webhooks failed`, re-drive with `... retry ID`")


@webhooks_app.command()
def failed(
    config: ConfigOpt = None,
    db: DbOpt = None,
    limit: Annotated[int, typer.Option(min=1)] = 100,
) -> None:
    """List dead-lettered webhooks (newest first) with their last error."""
    outbox, _ = _outbox(config, db)
    rows = outbox.failed(limit)
    console = Console()
    if not rows:
        console.print("no dead letters")
        return
    console.print(_table("dead letters", rows))


@webhooks_app.command()
def pending(
    config: ConfigOpt = None,
    db: DbOpt = None,
    limit: Annotated[int, typer.Option(min=1)] = 100,
) -> None:
    """List webhooks still waiting to be delivered."""
    outbox, _ = _outbox(config, db)
    rows = outbox.messages("pending", limit)
    console = Console()
    if not rows:
        console.print("nothing pending")
        return
    console.print(_table("pending", rows, show_next=True))


@webhooks_app.command()
def retry(
    webhook_ids: Annotated[list[str], typer.Argument(metavar="ID...", help="webhook-ids")],
    config: ConfigOpt = None,
    db: DbOpt = None,
) -> None:
    """Put dead letters back in the outbox with a fresh attempt budget (same webhook-id)."""
    outbox, _ = _outbox(config, db)
    missing = [wid for wid in webhook_ids if not outbox.retry(wid)]
    for wid in webhook_ids:
        if wid not in missing:
            typer.echo(f"{wid}: queued again")
    for wid in missing:
        typer.echo(f"{wid}: not a dead letter (unknown, pending or already delivered)", err=True)
    if missing:
        raise typer.Exit(1)


@webhooks_app.command()
def deliver(
    config: Annotated[
        Path, typer.Option("--config", "-c", help="YAML file with the webhooks: endpoints.")
    ],
    db: DbOpt = None,
    deadline: Annotated[
        float | None,
        typer.Option(help="Seconds to keep delivering and retrying (default: outbox.deadline_s)."),
    ] = None,
) -> None:
    """Drain the outbox until everything is delivered or the deadline passes.

    Exit status 0 when nothing is left pending, 3 when some still is.
    """
    outbox, cfg = _outbox(config, db)
    report = outbox.deliver_pending(cfg.outbox.deadline_s if deadline is None else deadline)
    print_report(report)
    if report.pending:
        raise typer.Exit(3)
