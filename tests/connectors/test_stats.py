"""Trends across calls (``connectors.stats``) over calls analyzed by the real flow and kept by
the real store, on SQLite and on a real PostgreSQL; the figures are worked out by hand in
``tests/stats_calls.py``."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from pydantic import ValidationError
from sqlalchemy import Engine, update

from callsense.connectors.appconfig import AppConfig
from callsense.connectors.calls_store import CallStore
from callsense.connectors.calls_tables import calls_table
from callsense.connectors.stats import MAX_GROUPS, StatsQuery, call_stats
from callsense.connectors.storage import make_engine
from callsense.core.errors import InputError
from callsense.pipeline.analyze import build_flow
from callsense.pipeline.config import CacheConfig
from callsense.pipeline.model import CallTranscript
from callsense.pipeline.records import utterance_from_record
from tests.stats_calls import BY_DAY, CALLS, SINCE, TOTAL, UNTIL, VIP_POLICY, figures, place


def store_calls(engine: Engine, tmp_path: Path) -> None:
    """What the service's worker does with each posted transcript (create, run, save), then
    a call still running and a failed one on the same Monday: neither is finished."""
    store = CallStore(engine)
    vip = tmp_path / "vip.yaml"
    vip.write_text(VIP_POLICY, encoding="utf-8")
    cfg = AppConfig(cache=CacheConfig(enabled=False))
    flows = {
        None: build_flow(cfg, with_tts=False),
        "vip": build_flow(cfg.model_copy(update={"policies": [vip]}), with_tts=False),
    }
    for call in CALLS:
        utterances = tuple(utterance_from_record({**t, "call_id": call.id}) for t in call.turns)
        transcript = CallTranscript(call.id, utterances, duration=call.duration, source="api")
        store.create(call.id, kind="transcript", policy=call.policy or "default",
                     requested_policy=call.policy, source="api")  # fmt: skip
        store.save_result(call.id, flows[call.policy].run(transcript))
    place(engine)
    store.create("mon-live", kind="live", policy="default", status="running")
    store.create("mon-failed", kind="transcript", policy="default")
    store.fail("mon-failed", "ValueError: broken")
    monday = dt.datetime(2025, 3, 3, 12, tzinfo=dt.UTC).timestamp()
    with engine.begin() as conn:
        conn.execute(
            update(calls_table)
            .where(calls_table.c.id.in_(["mon-live", "mon-failed"]))
            .values(created_at=monday)
        )


@pytest.fixture(scope="module")
def sqlite_engine(tmp_path_factory: pytest.TempPathFactory) -> Engine:
    tmp = tmp_path_factory.mktemp("stats")
    engine = make_engine(f"sqlite:///{tmp / 'callsense.db'}")
    store_calls(engine, tmp)
    return engine


def test_figures_per_day_and_in_total_on_sqlite_and_postgresql(db_url: str, tmp_path: Path) -> None:
    engine = make_engine(db_url)
    store_calls(engine, tmp_path)
    report = call_stats(engine, StatsQuery(since=SINCE, until=UNTIL, group_by="day"))
    assert [g.key for g in report.groups] == list(BY_DAY)
    assert [g.start for g in report.groups] == [
        dt.datetime(2025, 3, day, tzinfo=dt.UTC) for day in range(1, 7)
    ]
    for group in report.groups:
        assert figures(group.model_dump()) == BY_DAY[group.key], group.key
    assert figures(report.total.model_dump()) == TOTAL
    engine.dispose()


def test_without_a_window_the_days_run_from_the_first_call_to_the_last(
    sqlite_engine: Engine,
) -> None:
    report = call_stats(sqlite_engine, StatsQuery())
    assert report.groups[0].key == "2025-02-20" and report.groups[-1].key == "2025-03-06"
    assert len(report.groups) == 15  # 20 Feb .. 6 Mar, the days without calls included
    assert report.total.calls == 6 and report.total.escalated == 3
    assert report.total.handle_time_mean_s == round((10 + 50 + 20 + 60 + 40 + 30) / 6, 3)


def test_by_policy_groups_the_calls_by_the_policies_they_ran(sqlite_engine: Engine) -> None:
    report = call_stats(sqlite_engine, StatsQuery(since=SINCE, group_by="policy"))
    assert [g.key for g in report.groups] == ["default", "vip"]
    default, vip = report.groups
    assert (default.calls, default.escalated, default.satisfied) == (4, 2, 2)
    assert default.start is None
    assert default.first_escalation_mean_s == 23.5  # (16 + 31) / 2
    assert default.handle_time_mean_s == 42.5  # (50 + 20 + 60 + 40) / 4
    assert default.non_talk_share == 0.573  # (0.62 + 0.45 + 0.65) / 3
    assert figures(vip.model_dump()) == BY_DAY["2025-03-06"]
    assert figures(report.total.model_dump()) == TOTAL


def test_a_policy_filter_keeps_the_calls_that_ran_it(sqlite_engine: Engine) -> None:
    vip = call_stats(sqlite_engine, StatsQuery(policy="vip", since=SINCE, until=UNTIL))
    assert figures(vip.total.model_dump()) == BY_DAY["2025-03-06"]
    assert [g.calls for g in vip.groups] == [0, 0, 0, 0, 0, 1]
    none = call_stats(sqlite_engine, StatsQuery(policy="defaul", since=SINCE, until=UNTIL))
    assert none.total.calls == 0 and none.total.escalation_rate is None


def test_by_hour_in_a_window(sqlite_engine: Engine) -> None:
    query = StatsQuery(since="2025-03-03T09:00:00Z", until="2025-03-03T16:00:00Z",
                       group_by="hour")  # fmt: skip
    report = call_stats(sqlite_engine, query)
    assert [g.key for g in report.groups] == [f"2025-03-03T{h:02}:00Z" for h in range(9, 16)]
    assert [g.calls for g in report.groups] == [1, 0, 0, 0, 0, 0, 1]
    assert report.groups[0].first_escalation_mean_s == 16.0
    assert report.groups[-1].satisfaction_rate == 1.0
    assert report.total.calls == 2  # the running and the failed call (12:00) are not finished


def test_a_time_without_a_zone_is_utc_and_until_is_exclusive(sqlite_engine: Engine) -> None:
    report = call_stats(sqlite_engine, StatsQuery(since="2025-03-03", until="2025-03-03T15:30"))
    assert [g.key for g in report.groups] == ["2025-03-03"]
    assert report.total.calls == 1  # mon-laugh came at 15:30 exactly
    assert report.since == dt.datetime(2025, 3, 3, tzinfo=dt.UTC)


def test_bad_ranges_are_refused_with_what_to_change(sqlite_engine: Engine) -> None:
    with pytest.raises(ValidationError, match=r"since \(2025-03-05T00:00:00Z\) must be before"):
        StatsQuery(since="2025-03-05", until="2025-03-04")
    with pytest.raises(ValidationError, match="must be before"):
        StatsQuery(since="2025-03-05", until="2025-03-05")
    with pytest.raises(ValidationError, match="group_by"):
        StatsQuery.model_validate({"group_by": "week"})
    wide = StatsQuery(since="2020-01-01", until="2025-01-01", group_by="hour")
    with pytest.raises(InputError, match=f"more than {MAX_GROUPS}: .* or group by day"):
        call_stats(sqlite_engine, wide)
