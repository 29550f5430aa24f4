"""Trends across calls: escalation and satisfaction rates, times and shares per day, hour or
policy, read from the stored calls and their decisions (``GET /v1/stats``, ``callsense
stats``, the web page's trends view). Definitions: docs/stats.md.

The database does the per-call work (which calls, the first escalation, whether a
satisfaction mark exists, the dynamics' numbers out of the summary JSON, rule counts), so
only a few numbers per call cross the wire; grouping, means and medians happen here, over at
most ``MAX_CALLS`` calls, the same way on SQLite and PostgreSQL. Calls count by the time
they were received (``created_at``), grouped in UTC.
"""

from __future__ import annotations

import datetime as dt
import statistics
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from sqlalchemy import Engine, Float, Select, cast, exists, func, literal, select
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.sql.elements import ColumnElement

from callsense.connectors.calls_tables import calls_table
from callsense.connectors.outbox_rows import decisions_table
from callsense.core.errors import InputError

__all__ = [
    "MAX_CALLS",
    "MAX_GROUPS",
    "NO_POLICY",
    "TOP_RULES",
    "GroupBy",
    "GroupStats",
    "RuleCount",
    "StatsQuery",
    "StatsReport",
    "call_stats",
]

MAX_CALLS = 100_000
"""Calls one report reads; a wider range is refused (narrow ``since``/``until``)."""
MAX_GROUPS = 2_000
"""Days or hours one report spans (about 83 days by hour)."""
TOP_RULES = 10
NO_POLICY = "(none)"
"""The policy group of calls that ran no policy (not a valid policy name, so no clash)."""

GroupBy = Literal["day", "hour", "policy"]


class StatsQuery(BaseModel):
    """Which calls and how to group them (query parameters and CLI options alike)."""

    model_config = ConfigDict(frozen=True)

    since: dt.datetime | None = Field(
        None, description="calls received at or after this time (ISO 8601 or Unix time)"
    )
    until: dt.datetime | None = Field(
        None, description="calls received before this time (ISO 8601 or Unix time)"
    )
    policy: str | None = Field(
        None, pattern=r"^[A-Za-z0-9_-]{1,64}$", description="calls that ran this policy"
    )
    group_by: GroupBy = Field("day", description="day and hour are UTC")

    @model_validator(mode="after")
    def _since_before_until(self) -> StatsQuery:
        if (
            self.since is not None
            and self.until is not None
            and _utc(self.since) >= _utc(self.until)
        ):
            raise ValueError(
                f"since ({_iso(self.since)}) must be before until ({_iso(self.until)})"
            )
        return self

    def window(self) -> tuple[float | None, float | None]:
        """``since`` and ``until`` as Unix times (a time without a zone is UTC)."""
        return (
            None if self.since is None else _utc(self.since).timestamp(),
            None if self.until is None else _utc(self.until).timestamp(),
        )


class RuleCount(BaseModel):
    policy: str
    rule: str
    count: int = Field(description="times the rule fired (its actions at one time count once)")


class GroupStats(BaseModel):
    """The figures of one group of calls (or of all of them: ``key`` ``total``)."""

    key: str = Field(description="2025-03-04 (day), 2025-03-04T09:00Z (hour), a policy name")
    start: dt.datetime | None = Field(None, description="the day's or hour's first instant")
    calls: int
    escalated: int = Field(description="calls with at least one escalate decision")
    escalation_rate: float | None
    first_escalation_mean_s: float | None = Field(description="audio time, escalated calls")
    first_escalation_median_s: float | None
    satisfied: int = Field(description="calls with at least one satisfaction mark")
    satisfaction_rate: float | None
    handle_time_mean_s: float | None = Field(description="mean call duration")
    dynamics_calls: int = Field(description="calls with dynamics: those the shares average")
    hold_share: float | None = Field(description="mean of hold time / streamed time")
    non_talk_share: float | None = Field(description="mean of dynamics.non_talk_share")
    top_rules: list[RuleCount]


class StatsReport(BaseModel):
    group_by: GroupBy
    since: dt.datetime | None
    until: dt.datetime | None
    policy: str | None
    groups: list[GroupStats]
    total: GroupStats


@dataclass(frozen=True, slots=True)
class _CallRow:
    """What one call contributes; the dynamics numbers are None for a call without them."""

    id: str
    created_at: float
    policy: str | None
    duration_s: float | None
    first_escalation_s: float | None
    satisfied: bool
    hold_share: float | None
    non_talk_share: float | None


def call_stats(engine: Engine, query: StatsQuery) -> StatsReport:
    """The report of the finished calls ``query`` selects; ``InputError`` when the range
    holds more than ``MAX_CALLS`` calls or spans more than ``MAX_GROUPS`` days or hours."""
    rows, rules = _read(engine, query)
    buckets: dict[str, list[_CallRow]] = {}
    for row in rows:
        buckets.setdefault(_key(row, query.group_by), []).append(row)
    starts: dict[str, dt.datetime | None] = (
        dict.fromkeys(sorted(buckets))
        if query.group_by == "policy"
        else _time_keys(query, [r.created_at for r in rows])
    )
    groups = [_figures(key, start, buckets.get(key, []), rules) for key, start in starts.items()]
    return StatsReport(
        group_by=query.group_by,
        since=None if query.since is None else _utc(query.since),
        until=None if query.until is None else _utc(query.until),
        policy=query.policy,
        groups=groups,
        total=_figures("total", None, rows, rules),
    )


# -- reading --------------------------------------------------------------------------------


def _read(
    engine: Engine, query: StatsQuery
) -> tuple[list[_CallRow], dict[str, Counter[tuple[str, str]]]]:
    """One row per selected call, and per call how often each (policy, rule) fired."""
    t, d = calls_table, decisions_table
    postgres = engine.dialect.name == "postgresql"
    stored = d.c.seq.is_not(None)  # a stored call's decisions (a CLI run's have no seq)
    first_escalation = (
        select(func.min(cast(d.c.at, Float)))
        .where(d.c.call_id == t.c.id, stored, d.c.action == "escalate")
        .scalar_subquery()
    )
    satisfied = exists().where(
        d.c.call_id == t.c.id,
        stored,
        d.c.action == "mark",
        _json(d.c.body, ("params", "kind"), postgres, number=False) == "satisfaction",
    )
    dyn = ("dynamics",)
    columns = select(
        t.c.id,
        t.c.created_at,
        t.c.policy,
        t.c.duration_s,
        first_escalation.label("first_escalation"),
        satisfied.label("satisfied"),
        _json(t.c.summary, (*dyn, "duration_s"), postgres).label("dyn_duration"),
        _json(t.c.summary, (*dyn, "not_streamed_s"), postgres).label("dyn_not_streamed"),
        _json(t.c.summary, (*dyn, "hold_s"), postgres).label("dyn_hold"),
        _json(t.c.summary, (*dyn, "non_talk_share"), postgres).label("dyn_non_talk_share"),
    )
    selected = _selected(columns, query).order_by(t.c.created_at, t.c.id).limit(MAX_CALLS + 1)
    counts = (
        select(d.c.call_id, d.c.policy, d.c.rule, func.count(func.distinct(d.c.at)))
        .where(stored, d.c.call_id.in_(_selected(select(t.c.id), query)))
        .group_by(d.c.call_id, d.c.policy, d.c.rule)
    )
    with engine.connect() as conn:
        found = conn.execute(selected).all()
        if len(found) > MAX_CALLS:
            raise InputError(
                f"more than {MAX_CALLS} calls in the range: narrow it with since and until"
            )
        rules: dict[str, Counter[tuple[str, str]]] = {}
        for call_id, policy, rule, n in conn.execute(counts):
            rules.setdefault(call_id, Counter())[(policy, rule)] += int(n)
    return [_call_row(r) for r in found], rules


def _selected(stmt: Select[Any], query: StatsQuery) -> Select[Any]:
    """Finished calls in the window that ran the policy (as ``GET /v1/calls`` filters)."""
    t = calls_table
    since, until = query.window()
    stmt = stmt.where(t.c.status == "done")
    if since is not None:
        stmt = stmt.where(t.c.created_at >= since)
    if until is not None:
        stmt = stmt.where(t.c.created_at < until)
    if query.policy is not None:  # the names a call ran with, comma-joined
        padded = literal(",") + t.c.policy + literal(",")
        stmt = stmt.where(padded.contains(f",{query.policy},", autoescape=True))
    return stmt


def _json(
    column: ColumnElement[Any], path: Sequence[str], postgres: bool, *, number: bool = True
) -> ColumnElement[Any]:
    """A value inside a JSON text column; NULL where the path or the document is missing."""
    if postgres:
        value: ColumnElement[Any] = func.jsonb_extract_path_text(
            cast(column, JSONB), *(literal(p) for p in path)
        )
        return cast(value, Float) if number else value
    return func.json_extract(column, "$." + ".".join(path))


def _call_row(row: Any) -> _CallRow:
    m = row._mapping
    duration, not_streamed, hold = m["dyn_duration"], m["dyn_not_streamed"], m["dyn_hold"]
    streamed = None if duration is None else float(duration) - float(not_streamed or 0.0)
    hold_share = None
    if streamed is not None and streamed > 0 and hold is not None:
        hold_share = float(hold) / streamed
    non_talk = m["dyn_non_talk_share"]
    return _CallRow(
        id=m["id"],
        created_at=float(m["created_at"]),
        policy=m["policy"],
        duration_s=None if m["duration_s"] is None else float(m["duration_s"]),
        first_escalation_s=None if m["first_escalation"] is None else float(m["first_escalation"]),
        satisfied=bool(m["satisfied"]),
        hold_share=hold_share,
        non_talk_share=None if non_talk is None else float(non_talk),
    )


# -- grouping -------------------------------------------------------------------------------


_STEP = {"day": dt.timedelta(days=1), "hour": dt.timedelta(hours=1)}


def _bucket(at: float | dt.datetime, group_by: GroupBy) -> dt.datetime:
    moment = at if isinstance(at, dt.datetime) else dt.datetime.fromtimestamp(at, dt.UTC)
    moment = _utc(moment)
    if group_by == "day":
        return moment.replace(hour=0, minute=0, second=0, microsecond=0)
    return moment.replace(minute=0, second=0, microsecond=0)


def _label(start: dt.datetime, group_by: GroupBy) -> str:
    return start.strftime("%Y-%m-%d" if group_by == "day" else "%Y-%m-%dT%H:00Z")


def _key(row: _CallRow, group_by: GroupBy) -> str:
    if group_by == "policy":
        return row.policy or NO_POLICY
    return _label(_bucket(row.created_at, group_by), group_by)


def _time_keys(query: StatsQuery, times: Iterable[float]) -> dict[str, dt.datetime | None]:
    """Every day or hour from ``since`` (else the first call) to ``until`` (else the last
    call), empty ones included: a day without calls is part of the trend."""
    group_by = query.group_by
    step = _STEP[group_by]
    seen = sorted(times)
    first = query.since if query.since is not None else (seen[0] if seen else None)
    last: float | dt.datetime | None = seen[-1] if seen else None
    if query.until is not None:
        last = _utc(query.until) - dt.timedelta(microseconds=1)  # until is exclusive
    if first is None or last is None:
        return {}
    start, end = _bucket(first, group_by), _bucket(last, group_by)
    count = (end - start) // step + 1
    if count > MAX_GROUPS:
        raise InputError(
            f"the range spans {count} {group_by}s, more than {MAX_GROUPS}: narrow it with "
            "since and until" + (", or group by day" if group_by == "hour" else "")
        )
    return {_label(start + i * step, group_by): start + i * step for i in range(max(count, 0))}


def _figures(
    key: str,
    start: dt.datetime | None,
    rows: Sequence[_CallRow],
    rules: dict[str, Counter[tuple[str, str]]],
) -> GroupStats:
    calls = len(rows)
    escalations = [r.first_escalation_s for r in rows if r.first_escalation_s is not None]
    satisfied = sum(r.satisfied for r in rows)
    durations = [r.duration_s for r in rows if r.duration_s is not None]
    with_dynamics = [r for r in rows if r.non_talk_share is not None or r.hold_share is not None]
    holds = [r.hold_share for r in with_dynamics if r.hold_share is not None]
    non_talk = [r.non_talk_share for r in with_dynamics if r.non_talk_share is not None]
    fired: Counter[tuple[str, str]] = Counter()
    for r in rows:
        fired.update(rules.get(r.id, Counter()))
    top = sorted(fired.items(), key=lambda item: (-item[1], item[0]))[:TOP_RULES]
    return GroupStats(
        key=key,
        start=start,
        calls=calls,
        escalated=len(escalations),
        escalation_rate=_ratio(len(escalations), calls),
        first_escalation_mean_s=_mean(escalations),
        first_escalation_median_s=_round(statistics.median(escalations)) if escalations else None,
        satisfied=satisfied,
        satisfaction_rate=_ratio(satisfied, calls),
        handle_time_mean_s=_mean(durations),
        dynamics_calls=len(with_dynamics),
        hold_share=_mean(holds),
        non_talk_share=_mean(non_talk),
        top_rules=[RuleCount(policy=p, rule=rule, count=n) for (p, rule), n in top],
    )


def _ratio(part: int, whole: int) -> float | None:
    return _round(part / whole) if whole else None


def _mean(values: Sequence[float]) -> float | None:
    return _round(statistics.fmean(values)) if values else None


def _round(value: float) -> float:
    return round(value, 3)


def _utc(moment: dt.datetime) -> dt.datetime:
    """A time without a zone is UTC (as ``GET /v1/calls`` reads it)."""
    return moment.replace(tzinfo=dt.UTC) if moment.tzinfo is None else moment.astimezone(dt.UTC)


def _iso(moment: dt.datetime) -> str:
    return _utc(moment).isoformat().replace("+00:00", "Z")
