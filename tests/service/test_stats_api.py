"""``GET /v1/stats`` and ``callsense stats`` over calls posted to a real service (uvicorn,
SQLite, the real worker), placed on four days; the figures are worked out by hand in
``tests/stats_calls.py``."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from callsense.connectors.appconfig import AppConfig
from callsense.connectors.cli import app as cli
from callsense.pipeline.config import CacheConfig
from tests.service.conftest import Service, serve
from tests.stats_calls import BY_DAY, SINCE, TOTAL, UNTIL, figures, post_calls


@pytest.fixture(scope="module")
def stats_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    tmp = tmp_path_factory.mktemp("service-stats")
    cfg = AppConfig(cache=CacheConfig(enabled=False))
    with serve(tmp, cfg, load_models=False, scheduler=False) as service:
        with service.client() as c:
            post_calls(c, service.runtime.engine)
        yield service


def test_figures_per_day_and_in_total(stats_service: Service) -> None:
    with stats_service.client() as c:
        resp = c.get("/v1/stats", params={"since": SINCE, "until": UNTIL, "group_by": "day"})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert (body["group_by"], body["since"], body["until"], body["policy"]) == (
        "day", "2025-03-01T00:00:00Z", "2025-03-07T00:00:00Z", None,
    )  # fmt: skip
    assert [g["key"] for g in body["groups"]] == list(BY_DAY)
    assert body["groups"][2]["start"] == "2025-03-03T00:00:00Z"
    for group in body["groups"]:
        assert figures(group) == BY_DAY[group["key"]], group["key"]
    assert body["total"]["key"] == "total" and figures(body["total"]) == TOTAL


def test_by_policy_and_for_one_policy(stats_service: Service) -> None:
    with stats_service.client() as c:
        by_policy = c.get("/v1/stats", params={"since": SINCE, "group_by": "policy"}).json()
        vip = c.get("/v1/stats", params={"policy": "vip", "group_by": "policy"}).json()
        everything = c.get("/v1/stats").json()  # by day, from the first call to the last
    assert [(g["key"], g["calls"]) for g in by_policy["groups"]] == [("default", 4), ("vip", 1)]
    assert figures(by_policy["total"]) == TOTAL
    assert [g["key"] for g in vip["groups"]] == ["vip"]
    assert figures(vip["total"]) == BY_DAY["2025-03-06"]
    assert everything["groups"][0]["key"] == "2025-02-20" and len(everything["groups"]) == 15
    assert everything["total"]["calls"] == 6


@pytest.mark.parametrize(
    ("params", "says"),
    [
        ({"since": "2025-03-05", "until": "2025-03-04"}, "must be before until"),
        ({"group_by": "week"}, "group_by"),
        ({"since": "last tuesday"}, "since"),
        ({"policy": "../etc"}, "policy"),
        ({"since": "2000-01-01", "until": "2025-01-01", "group_by": "hour"}, "group by day"),
    ],
)
def test_bad_parameters_are_a_422_problem(
    stats_service: Service, params: dict[str, str], says: str
) -> None:
    with stats_service.client() as c:
        resp = c.get("/v1/stats", params=params)
    assert resp.status_code == 422, resp.text
    assert resp.headers["content-type"] == "application/problem+json"
    body = resp.json()
    assert body["status"] == 422 and says in body["detail"], body


def test_stats_need_a_key(stats_service: Service) -> None:
    with stats_service.client(key=None) as c:
        assert c.get("/v1/stats").status_code == 401
    with stats_service.client(key="csk_000000000000_wrong") as c:
        assert c.get("/v1/stats").status_code == 401


def test_the_cli_reads_the_database_serve_uses(stats_service: Service, tmp_path: Path) -> None:
    """``-c`` names the service's config; its outbox.db_url is where serve keeps the calls."""
    db = f"sqlite:///{stats_service.tmp}/callsense.db"
    config = tmp_path / "callsense.yaml"
    config.write_text(f"outbox:\n  db_url: {db}\n", encoding="utf-8")
    runner = CliRunner()
    args = ["stats", "-c", str(config), "--since", SINCE, "--until", UNTIL]
    table = runner.invoke(cli, args, env={"COLUMNS": "200"})
    assert table.exit_code == 0, table.output
    rows = {line.split("│")[1].strip(): line for line in table.output.splitlines() if "│" in line}
    cells = [c.strip() for c in rows["2025-03-03"].split("│")[2:-1]]
    assert cells == ["2", "1 (50.0 %)", "16.0 / 16.0 s", "1 (50.0 %)", "35.0 s", "20.0 %",
                     "53.5 %", "angry-streak ×1"]  # fmt: skip
    total = [c.strip() for c in rows["total"].split("│")[2:-1]]
    assert total == ["5", "3 (60.0 %)", "17.3 / 16.0 s", "2 (40.0 %)", "40.0 s", "22.5 %",
                     "63.0 %", "angry-streak ×2"]  # fmt: skip
    assert [c.strip() for c in rows["2025-03-05"].split("│")[2:-1]] == [
        "0", "0", "–", "0", "–", "–", "–", "–",
    ]  # fmt: skip
    lines = [[c.strip() for c in line.split("│")[1:-1]] for line in table.output.splitlines()]
    fired = [cells for cells in lines if len(cells) == 3]  # the rules table
    assert fired == [["default", "angry-streak", "2"], ["default", "laughter-satisfaction", "2"],
                     ["vip", "any-angry", "1"]]  # fmt: skip

    as_json = runner.invoke(cli, [*args, "--json", "--db", db])
    assert as_json.exit_code == 0, as_json.output
    with stats_service.client() as c:
        api = c.get("/v1/stats", params={"since": SINCE, "until": UNTIL}).json()
    assert json.loads(as_json.output) == api


def test_the_cli_says_what_is_wrong_with_its_options(stats_service: Service) -> None:
    db = f"sqlite:///{stats_service.tmp}/callsense.db"
    runner = CliRunner()
    late = runner.invoke(
        cli, ["stats", "--db", db, "--since", "2025-03-05", "--until", "2025-03-04"]
    )
    assert late.exit_code == 2
    assert "since (2025-03-05T00:00:00Z) must be before until" in late.output
    week = runner.invoke(cli, ["stats", "--db", db, "--group-by", "week"])
    assert week.exit_code == 2 and "'week' is not one of" in week.output
