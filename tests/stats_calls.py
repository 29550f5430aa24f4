"""Six calls on four days for the trends tests (connectors, API, CLI, web page), and the
figures docs/stats.md's definitions give for them, worked out by hand below.

Each call is a posted transcript (the records ``callsense transcribe`` writes) analyzed by
the real flow and stored by the real store; the store stamps a call with the wall clock, so
``place`` then moves each call to the time it is meant to have been received, and takes the
dynamics out of the summary of the call stored "before dynamics existed".
"""

from __future__ import annotations

import datetime as dt
import json
import time
from dataclasses import dataclass
from typing import Any

import httpx
from sqlalchemy import Engine, select, update

from callsense.connectors.calls_tables import calls_table

CALM = "Thank you for waiting."
ANGRY = "This is absurd, I want a refund."

VIP_POLICY = """\
policy: vip
description: any angry customer turn escalates
rules:
  - id: any-angry
    when: {speaker: customer, emotion: ANGRY}
    once: true
    then:
      - escalate: {priority: urgent, reason: "an angry VIP"}
"""


def turn(speaker: str, start: float, end: float, emotion: str = "NEUTRAL",
         event: str = "Speech") -> dict[str, Any]:  # fmt: skip
    """One utterance record; the customer is channel 0, the agent channel 1."""
    if event == "BGM":
        raw = "<|nospeech|><|EMO_UNKNOWN|><|BGM|><|woitn|>"
    else:
        text = ANGRY if emotion == "ANGRY" else ("ha ha" if event == "Laughter" else CALM)
        raw = f"<|en|><|{emotion}|><|{event}|><|withitn|>{text}"
    channel = 0 if speaker == "customer" else 1
    return {"channel": channel, "speaker": speaker, "start": start, "end": end, "raw": raw}


@dataclass(frozen=True, slots=True)
class StatsCall:
    id: str
    received: dt.datetime
    policy: str | None  # None: the active set (the default policy)
    duration: float
    turns: tuple[dict[str, Any], ...]
    without_dynamics: bool = False  # stored before summaries had dynamics

    def body(self) -> dict[str, Any]:
        """The ``POST /v1/calls`` JSON body."""
        body: dict[str, Any] = {
            "call_id": self.id,
            "duration": self.duration,
            "utterances": [{**t, "call_id": self.id} for t in self.turns],
        }
        if self.policy is not None:
            body["policy"] = self.policy
        return body


def _at(day: int, hour: int, minute: int = 0) -> dt.datetime:
    return dt.datetime(2025, 3, day, hour, minute, tzinfo=dt.UTC)


CALLS: tuple[StatsCall, ...] = (
    # before the window the tests ask for
    StatsCall(
        "feb-calm",
        dt.datetime(2025, 2, 20, 12, tzinfo=dt.UTC),
        None,
        10.0,
        (turn("agent", 0, 5), turn("customer", 5, 9)),
    ),
    # Monday 09:10: three angry turns escalate at 16 s; hold music 20-40 s.
    # talk 4 + 1.5 + 4 + 1.5 + 4 + 4 = 19 of 50 s: non-talk 0.62, hold 20/50 = 0.4
    StatsCall(
        "mon-angry",
        _at(3, 9, 10),
        None,
        50.0,
        (
            turn("customer", 0, 4, "ANGRY"),
            turn("agent", 4.5, 6),
            turn("customer", 6, 10, "ANGRY"),
            turn("agent", 10.5, 12),
            turn("customer", 12, 16, "ANGRY"),
            turn("agent", 20, 40, event="BGM"),
            turn("agent", 40, 44),
        ),
    ),
    # Monday 15:30: a laugh marks satisfaction. talk 5 + 2 + 4 = 11 of 20 s: 0.45; no hold
    StatsCall(
        "mon-laugh",
        _at(3, 15, 30),
        None,
        20.0,
        (
            turn("agent", 0, 5),
            turn("customer", 5, 7, "HAPPY", "Laughter"),
            turn("customer", 8, 12),
        ),
    ),
    # Tuesday 11:00: escalates at 31 s, then laughs. talk 10 + 3 * 3 + 2 = 21 of 60 s: 0.65
    StatsCall(
        "tue-both",
        _at(4, 11),
        None,
        60.0,
        (
            turn("agent", 0, 10),
            turn("customer", 20, 23, "ANGRY"),
            turn("customer", 24, 27, "ANGRY"),
            turn("customer", 28, 31, "ANGRY"),
            turn("customer", 50, 52, "HAPPY", "Laughter"),
        ),
    ),
    # Tuesday 18:00: calm, stored before dynamics: it counts everywhere but in the shares
    StatsCall("tue-old", _at(4, 18), None, 40.0, (turn("agent", 0, 10),), without_dynamics=True),
    # Wednesday: no calls. Thursday 08:00, the vip policy: escalates at 5 s;
    # hold 10-25 s: 15/30 = 0.5; talk 3 + 3 = 6 of 30 s: non-talk 0.8
    StatsCall(
        "thu-vip",
        _at(6, 8),
        "vip",
        30.0,
        (
            turn("customer", 2, 5, "ANGRY"),
            turn("agent", 10, 25, event="BGM"),
            turn("agent", 25, 28),
        ),
    ),
)

SINCE, UNTIL = "2025-03-01T00:00:00Z", "2025-03-07T00:00:00Z"

_NO_CALLS = {
    "calls": 0, "escalated": 0, "escalation_rate": None, "first_escalation_mean_s": None,
    "first_escalation_median_s": None, "satisfied": 0, "satisfaction_rate": None,
    "handle_time_mean_s": None, "dynamics_calls": 0, "hold_share": None,
    "non_talk_share": None, "top_rules": [],
}  # fmt: skip
ANGRY_STREAK = {"policy": "default", "rule": "angry-streak"}
LAUGHTER = {"policy": "default", "rule": "laughter-satisfaction"}
ANY_ANGRY = {"policy": "vip", "rule": "any-angry"}

BY_DAY: dict[str, dict[str, Any]] = {  # since SINCE: empty days are groups too
    "2025-03-01": _NO_CALLS,
    "2025-03-02": _NO_CALLS,
    "2025-03-03": {
        "calls": 2, "escalated": 1, "escalation_rate": 0.5, "first_escalation_mean_s": 16.0,
        "first_escalation_median_s": 16.0, "satisfied": 1, "satisfaction_rate": 0.5,
        "handle_time_mean_s": 35.0, "dynamics_calls": 2, "hold_share": 0.2,
        "non_talk_share": 0.535,
        "top_rules": [{**ANGRY_STREAK, "count": 1}, {**LAUGHTER, "count": 1}],
    },
    "2025-03-04": {
        "calls": 2, "escalated": 1, "escalation_rate": 0.5, "first_escalation_mean_s": 31.0,
        "first_escalation_median_s": 31.0, "satisfied": 1, "satisfaction_rate": 0.5,
        "handle_time_mean_s": 50.0, "dynamics_calls": 1, "hold_share": 0.0,
        "non_talk_share": 0.65,
        "top_rules": [{**ANGRY_STREAK, "count": 1}, {**LAUGHTER, "count": 1}],
    },
    "2025-03-05": _NO_CALLS,
    "2025-03-06": {
        "calls": 1, "escalated": 1, "escalation_rate": 1.0, "first_escalation_mean_s": 5.0,
        "first_escalation_median_s": 5.0, "satisfied": 0, "satisfaction_rate": 0.0,
        "handle_time_mean_s": 30.0, "dynamics_calls": 1, "hold_share": 0.5,
        "non_talk_share": 0.8, "top_rules": [{**ANY_ANGRY, "count": 1}],
    },
}  # fmt: skip

# (16 + 31 + 5) / 3 = 17.333; (50 + 20 + 60 + 40 + 30) / 5 = 40; hold (0.4 + 0 + 0 + 0.5) / 4;
# non-talk (0.62 + 0.45 + 0.65 + 0.8) / 4
TOTAL: dict[str, Any] = {
    "calls": 5, "escalated": 3, "escalation_rate": 0.6, "first_escalation_mean_s": 17.333,
    "first_escalation_median_s": 16.0, "satisfied": 2, "satisfaction_rate": 0.4,
    "handle_time_mean_s": 40.0, "dynamics_calls": 4, "hold_share": 0.225,
    "non_talk_share": 0.63,
    "top_rules": [{**ANGRY_STREAK, "count": 2}, {**LAUGHTER, "count": 2},
                  {**ANY_ANGRY, "count": 1}],
}  # fmt: skip


def place(engine: Engine, calls: tuple[StatsCall, ...] = CALLS) -> None:
    """Give the stored calls their reception times, and the old call a summary without
    dynamics (what a database from before them holds)."""
    t = calls_table
    with engine.begin() as conn:
        for call in calls:
            values: dict[str, Any] = {"created_at": call.received.timestamp()}
            if call.without_dynamics:
                stored = conn.execute(select(t.c.summary).where(t.c.id == call.id)).scalar_one()
                summary = json.loads(stored)
                summary.pop("dynamics")
                values["summary"] = json.dumps(summary)
            conn.execute(update(t).where(t.c.id == call.id).values(**values))


def figures(group: dict[str, Any]) -> dict[str, Any]:
    """A report group without its key and start (what BY_DAY and TOTAL hold)."""
    return {k: v for k, v in group.items() if k not in ("key", "start")}


def post_calls(client: httpx.Client, engine: Engine, timeout_s: float = 60.0) -> None:
    """Through a running service's API: store the vip policy (not active: calls naming no
    policy run the default one alone), post every call, wait until each is analyzed, then
    ``place`` them."""
    put = client.put(
        "/v1/policies/vip",
        params={"active": "false"},
        content=VIP_POLICY,
        headers={"Content-Type": "application/yaml"},
    )
    assert put.status_code == 200, put.text
    for call in CALLS:
        posted = client.post("/v1/calls", json=call.body())
        assert posted.status_code == 202, posted.text
    deadline = time.monotonic() + timeout_s
    for call in CALLS:
        while (status := client.get(f"/v1/calls/{call.id}").json()["status"]) != "done":
            assert status != "failed" and time.monotonic() < deadline, f"{call.id}: {status}"
            time.sleep(0.05)
    place(engine)
