"""``callsense stats``: trends across the stored calls, as ``GET /v1/stats`` reports them."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError
from pydantic_core import ErrorDetails
from rich.markup import escape
from rich.table import Table

from callsense.connectors.console import fail, out_console
from callsense.connectors.stats import GroupBy, GroupStats, StatsReport
from callsense.core.errors import CallsenseError

__all__ = ["register"]

TimeOpt = Annotated[str | None, typer.Option(help="ISO 8601 (UTC without a zone) or Unix time.")]


def stats(
    since: TimeOpt = None,
    until: TimeOpt = None,
    policy: Annotated[str | None, typer.Option(help="Only calls that ran this policy.")] = None,
    group_by: Annotated[
        GroupBy, typer.Option("--group-by", "-g", help="day and hour are UTC.")
    ] = "day",
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the report as JSON (the API's answer).")
    ] = False,
    db: Annotated[
        str | None,
        typer.Option(
            "--db", help="Database URL (default: the config's outbox.db_url, $CALLSENSE_DB_URL)."
        ),
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            "-c",
            help="The service's YAML config: its outbox.db_url is the database `serve` uses "
            "(default: $CALLSENSE_CONFIG).",
        ),
    ] = None,
) -> None:
    """Escalation and satisfaction rates, time to first escalation, handle time, hold and
    non-talk shares and the rules fired, per day, hour or policy (docs/stats.md).

    Reads the database `callsense serve` uses: --db, else the config's outbox.db_url, else
    $CALLSENSE_DB_URL, else ./callsense.db. Only finished calls count, by the time they
    were received in [since, until)."""
    from callsense.connectors.appconfig import load_app_config
    from callsense.connectors.stats import StatsQuery, call_stats
    from callsense.connectors.storage import create_schema, make_engine

    try:
        query = StatsQuery(since=since, until=until, policy=policy, group_by=group_by)
    except ValidationError as exc:
        fail("; ".join(_problem(e) for e in exc.errors()))
    try:
        engine = make_engine(db or load_app_config(config).outbox.db_url)
        create_schema(engine)  # as serve would: an older database gains the columns read
        report = call_stats(engine, query)
    except CallsenseError as exc:
        fail(exc)
    engine.dispose()
    if as_json:
        out_console.print_json(report.model_dump_json())
        return
    out_console.print(report_table(report))
    if report.total.top_rules:
        out_console.print(rules_table(report.total))


def _problem(error: ErrorDetails) -> str:
    """A pydantic error as the option it is about (``--since: ...``)."""
    where = ".".join(str(p) for p in error["loc"])
    message = error["msg"].removeprefix("Value error, ")
    return f"--{where.replace('_', '-')}: {message}" if where else message


def report_table(report: StatsReport) -> Table:
    """One row per group and a total row (the web page's trends table has the same columns)."""
    window = " ".join(
        part
        for part in (
            f"since {report.since:%Y-%m-%d %H:%M}Z" if report.since else "",
            f"until {report.until:%Y-%m-%d %H:%M}Z" if report.until else "",
            f"policy {escape(report.policy)}" if report.policy else "",
        )
        if part
    )
    table = Table(
        title=f"Calls by {report.group_by}" + (f" ({window})" if window else ""),
        caption="1st escalation: mean / median audio time to it; hold, non-talk: means over "
        "the calls with dynamics (docs/stats.md)",
    )
    table.add_column(report.group_by)
    for name in ("calls", "escalated", "1st escalation", "satisfied",
                 "handle time", "hold", "non-talk", "top rule"):  # fmt: skip
        table.add_column(name, justify="left" if name == "top rule" else "right")
    for group in report.groups:
        table.add_row(*_cells(group))
    table.add_section()
    table.add_row(*_cells(report.total), style="bold")
    return table


def rules_table(group: GroupStats) -> Table:
    table = Table(title="Rules fired")
    for name in ("policy", "rule", "fired"):
        table.add_column(name, justify="right" if name == "fired" else "left")
    for r in group.top_rules:
        table.add_row(escape(r.policy), escape(r.rule), str(r.count))
    return table


def _cells(g: GroupStats) -> list[str]:
    top = g.top_rules[0] if g.top_rules else None
    mean, median = g.first_escalation_mean_s, g.first_escalation_median_s
    return [
        escape(g.key),
        str(g.calls),
        f"{g.escalated} ({_percent(g.escalation_rate)})" if g.calls else "0",
        f"{mean:.1f} / {_seconds(median)}" if mean is not None else "–",
        f"{g.satisfied} ({_percent(g.satisfaction_rate)})" if g.calls else "0",
        _seconds(g.handle_time_mean_s),
        _percent(g.hold_share),
        _percent(g.non_talk_share),
        f"{escape(top.rule)} ×{top.count}" if top else "–",
    ]


def _percent(share: float | None) -> str:
    return "–" if share is None else f"{share * 100:.1f} %"


def _seconds(value: float | None) -> str:
    return "–" if value is None else f"{value:.1f} s"


def register(app: typer.Typer) -> None:
    app.command("stats")(stats)
