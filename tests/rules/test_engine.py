"""Sessions, decisions and the backends' agreement, on observations built directly."""

from __future__ import annotations

import json

import pytest

from callsense.core.errors import InputError
from callsense.rules.backends import DurableMatcher, PythonMatcher
from callsense.rules.engine import BACKENDS, PolicyEngine
from callsense.rules.model import Observation

DEFAULT = """\
policy: default
skip: [{event: BGM}]
rules:
  - id: angry-streak
    when: {speaker: customer, emotion: ANGRY, consecutive: 3}
    once: true
    then: [{escalate: {priority: high, reason: three consecutive angry utterances}}]
"""


def _angry(call: str, seq: int) -> Observation:
    return Observation(call, seq, 2.0 * seq, 2.0 * seq + 1.5, emotion="ANGRY", event="Speech")


def test_decision_serializes_to_one_json_line_with_the_agreed_keys() -> None:
    engine = PolicyEngine.from_text(DEFAULT)
    [d] = engine.run("call-1", [_angry("call-1", i) for i in range(3)])
    line = d.to_json()
    assert "\n" not in line
    data = json.loads(line)
    assert list(data) == [
        "call_id",
        "policy",
        "rule",
        "action",
        "params",
        "at",
        "evidence",
        "policy_hash",
    ]
    assert data["call_id"] == "call-1" and data["policy"] == "default"
    assert data["params"] == {"priority": "high", "reason": "three consecutive angry utterances"}
    assert data["at"] == 5.5
    assert [e["seq"] for e in data["evidence"]] == [0, 1, 2]
    assert data["evidence"][0] == {
        "seq": 0,
        "start": 0.0,
        "end": 1.5,
        "speaker": "customer",
        "emotion": "ANGRY",
        "event": "Speech",
    }
    assert data["policy_hash"] == engine.policy_hash and len(engine.policy_hash) == 64


def test_observe_after_close_is_an_input_error() -> None:
    session = PolicyEngine.from_text(DEFAULT).open("c")
    session.close(10.0)
    with pytest.raises(InputError):
        session.observe(_angry("c", 0))


def test_the_durable_backend_matches_inside_durable_rules() -> None:
    """Its facts go to one durable-rules state, which the C engine holds from the first fact
    on; the python backend has no such thing."""
    engine = PolicyEngine.from_text(DEFAULT, backend="durable")
    assert isinstance(engine.matcher, DurableMatcher)
    assert engine.matcher.state() is None  # no fact yet
    [d] = engine.run("c", [_angry("c", i) for i in range(3)])
    assert d.rule == "angry-streak"
    state = engine.matcher.state()
    assert state is not None and state["sid"] == "0"
    engine.close()
    assert engine.matcher.state() is None
    assert isinstance(PolicyEngine.from_text(DEFAULT).matcher, PythonMatcher)


def test_unknown_backend_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown rules engine"):
        PolicyEngine.from_text(DEFAULT, backend="drools")


@pytest.mark.parametrize("backend", BACKENDS)
def test_ten_thousand_interleaved_live_sessions(backend: str) -> None:
    """More than durable-rules' 1024 live states: sessions are ours, not durable-rules'."""
    engine = PolicyEngine.from_text(DEFAULT, backend=backend)
    sessions = {f"call-{i}": engine.open(f"call-{i}") for i in range(10_000)}
    fired: dict[str, int] = {}
    for seq in range(3):
        for call_id, session in sessions.items():
            for d in session.observe(_angry(call_id, seq)):
                fired[d.call_id] = fired.get(d.call_id, 0) + 1
    assert len(fired) == 10_000 and set(fired.values()) == {1}
    engine.close()


def test_chinese_keywords_match_on_both_backends() -> None:
    text = """\
policy: zh
rules:
  - id: manager
    when: {text: {keywords: [经理]}}
    then: [{tag: manager}]
"""
    for backend in BACKENDS:
        engine = PolicyEngine.from_text(text, backend=backend)
        obs = [
            Observation("c", 0, 0, 1, text="我要找你们经理"),
            Observation("c", 1, 1, 2, text="好"),
        ]
        assert [d.at for d in engine.run("c", obs)] == [1]
