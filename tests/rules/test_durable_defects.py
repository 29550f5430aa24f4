"""durable-rules 2.0.28's defects that rules/backends.py designs around, each proven here.

If one of these starts failing, durable-rules changed and the design notes in
rules/backends.py and docs/policies.md should be revisited.
"""

from __future__ import annotations

import itertools
import json
import signal
import subprocess
import sys

import durable_rules_engine as dre
import pytest
from durable import engine as durable_engine

_names = itertools.count()


def _ruleset(definition: dict) -> int:
    return dre.create_ruleset(f"defect{next(_names)}", json.dumps(definition))


def test_live_states_are_capped_at_1024() -> None:
    handle = _ruleset({"pair": {"all": [{"a": {"x": 1}}, {"b": {"x": 2}}]}})
    with pytest.raises(MemoryError):
        for i in range(1100):
            dre.assert_event(handle, json.dumps({"sid": str(i), "id": 1, "x": 1}))
    assert i == 1024


def test_unmatched_event_raises_message_not_handled() -> None:
    ruleset = durable_engine.Ruleset(
        f"nh{next(_names)}", None, {"r": {"all": [{"m": {"x": 1}}], "run": lambda c: None}}
    )
    with pytest.raises(durable_engine.MessageNotHandledException):
        ruleset.assert_event({"sid": "0", "id": 1, "x": 2})


def test_a_fact_with_a_seen_id_is_silently_dropped() -> None:
    handle = _ruleset({"r": {"all": [{"m": {"x": 1}}]}})
    assert dre.assert_fact(handle, json.dumps({"sid": "0", "id": 7, "x": 1}))[0] == 0
    assert dre.start_action_for_state(handle, 1)
    dre.complete_and_start_action(handle, 1)
    assert dre.assert_fact(handle, json.dumps({"sid": "0", "id": 7, "x": 1}))[0] == 2  # observed


_SEQUENCE = """
import json, durable_rules_engine as dre
h = dre.create_ruleset("seq", json.dumps({"a": {"all": [
    {"first": {"e": "ANGRY"}},
    {"second": {"$and": [{"e": "ANGRY"}, {"$gt": {"t": {"first": "t"}}}]}},
    {"third": {"$and": [{"e": "ANGRY"}, {"$gt": {"t": {"second": "t"}}}]}}]}}))
for i, e in enumerate(["ANGRY", "NEUTRAL", "ANGRY", "NEUTRAL", "ANGRY"]):
    code, state = dre.assert_event(h, json.dumps({"sid": "0", "id": i, "e": e, "t": i}))
    if code == 0 and dre.start_action_for_state(h, state):
        print("FIRED", i)
"""


def test_sequence_rules_match_non_consecutive_events_or_crash() -> None:
    """A 3-ANGRY sequence rule fires across NEUTRAL utterances (or segfaults: seen here too,
    depending on what the process did before), so "consecutive" cannot be built on it."""
    proc = subprocess.run(
        [sys.executable, "-c", _SEQUENCE], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == -signal.SIGSEGV or proc.stdout.strip() == "FIRED 4"


def test_its_regex_does_not_match_chinese_text() -> None:
    handle = _ruleset({"r": {"all": [{"m": {"$imt": {"text": ".*经理.*"}}}]}})
    text = json.dumps({"sid": "0", "id": 1, "text": "我要找经理"}, ensure_ascii=False)
    assert dre.assert_fact(handle, text)[0] == 1  # not handled: so text tests run in Python


def test_an_event_fires_only_the_first_matching_rule_a_fact_fires_all() -> None:
    handle = _ruleset({"a": {"all": [{"m": {"x": 1}}]}, "b": {"all": [{"m": {"y": 1}}]}})

    def fired(kind: str, i: int) -> set[str]:
        assert_ = dre.assert_event if kind == "event" else dre.assert_fact
        _code, state = assert_(handle, json.dumps({"sid": "0", "id": i, "x": 1, "y": 1}))
        names, result = set(), dre.start_action_for_state(handle, state)
        message = result[1] if result else None
        while message:
            names.add(message[2 : message.index('"', 2)])
            message = dre.complete_and_start_action(handle, state)
        return names

    assert len(fired("event", 1)) == 1
    assert fired("fact", 2) == {"a", "b"}
