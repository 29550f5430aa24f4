"""The table ``analyze`` prints at the end of a batch (local or on Ray): one row per call."""

from __future__ import annotations

from typing import Any

from rich.markup import escape
from rich.table import Table

__all__ = ["summary_table"]


def summary_table(
    summaries: list[dict[str, Any]], failed: list[tuple[str, str]], *, title: str
) -> Table:
    """The batch at a glance, one row per call (from ``summary.json`` contents)."""
    table = Table(title=title, expand=False)
    columns = (
        "call",
        "duration s",
        "utterances",
        "escalation",
        "satisfaction",
        "intents",
        "replies",
        "errors",
    )
    for col in columns:
        table.add_column(col, overflow="fold")
    for s in summaries:
        esc = ", ".join(f"{e['priority']}@{e['at']:.1f}s" for e in s["escalations"]) or "-"
        score = s["satisfaction"]["score"]
        table.add_row(
            escape(s["call_id"]),
            f"{s['duration_s'] or 0:.1f}",
            str(s["utterances"]),
            esc,
            "-" if score is None else f"{score:.2f}",
            ", ".join(f"{k}×{v}" for k, v in s["intents"].items()) or "-",
            str(s["replies"]),
            str(len(s["errors"])),
        )
    for name, message in failed:
        table.add_row(escape(name), *["-"] * (len(columns) - 2), f"failed: {escape(message)}")
    escalated = sum(bool(s["escalated"]) for s in summaries)
    table.caption = f"{len(summaries)} analyzed, {len(failed)} failed, {escalated} escalated"
    return table
