"""Bad policy input: one clear file:line error each, nothing half-loaded."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from callsense.core.errors import ConfigError
from callsense.rules.engine import PolicyEngine
from callsense.rules.loader import load_policies, load_policy_texts
from callsense.rules.schema import parse_duration

GOOD = """\
policy: p
rules:
  - id: a
    when: {speaker: customer, emotion: ANGRY, consecutive: 3}
    then: [{escalate: {priority: high}}]
"""


def _error(text: str, file: str = "p.yaml") -> str:
    with pytest.raises(ConfigError) as info:
        load_policy_texts([(text, file)])
    return str(info.value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("policy: p\nrules: [\n", "p.yaml:3: not valid YAML"),
        ("policy: p\npolicy: q\n", "p.yaml:2: duplicate key 'policy' (first defined on line 1)"),
        (GOOD + "    colour: red\n", "p.yaml:6: rules[0].colour: unknown field"),
        (
            GOOD.replace("consecutive: 3", "consecutive: three"),
            "p.yaml:4: rules[0].when.consecutive: Input should be a valid integer",
        ),
        (
            GOOD.replace("consecutive: 3", "consecutive: 0"),
            "p.yaml:4: rules[0].when.consecutive: Input should be greater than or equal to 1",
        ),
        (
            GOOD.replace("ANGRY", "angry"),
            "p.yaml:4: rules[0].when.emotion: unknown emotion 'angry'; did you mean ANGRY?",
        ),
        (GOOD.replace("ANGRY", "ANGYR"), "did you mean ANGRY?"),
        (GOOD.replace("customer", "custmer"), "did you mean customer?"),
        (
            GOOD.replace("consecutive: 3", "consecutive: 3, within: 30x"),
            "p.yaml:4: rules[0].when.within: not a duration",
        ),
        (GOOD.replace("consecutive: 3", "consecutive: 3, within: 30"), "with a unit"),
        (GOOD.replace("priority: high", "priority: critical"), "p.yaml:5: rules[0].then[0]"),
        (GOOD.replace("escalate:", "escalte:"), "p.yaml:5: rules[0].then[0]: an action is"),
        (
            GOOD.replace("consecutive: 3", "at_least: 4, of_last: 3"),
            "at_least (4) cannot exceed of_last (3)",
        ),
        ("- just\n- a list\n", "p.yaml:1: a policy file is a mapping"),
    ],
)
def test_bad_policy_is_one_clear_error(text: str, expected: str) -> None:
    assert expected in _error(text)


def test_missing_file_names_it(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_policies([tmp_path / "nope.yaml"])
    assert str(info.value) == f"{tmp_path / 'nope.yaml'}: file not found"


def test_rule_id_is_unique_across_files() -> None:
    with pytest.raises(ConfigError) as info:
        load_policy_texts([(GOOD, "a.yaml"), (GOOD.replace("policy: p", "policy: q"), "b.yaml")])
    assert str(info.value) == (
        "b.yaml:3: rules[0].id: rule id 'a' is already used at a.yaml:3; "
        "rule ids are unique across all loaded policies"
    )


def test_every_problem_of_every_file_is_reported_and_nothing_loads() -> None:
    with pytest.raises(ConfigError) as info:
        load_policy_texts([(GOOD.replace("ANGRY", "angry"), "a.yaml"), ("policy: [", "b.yaml")])
    assert len(info.value.problems) == 2
    assert info.value.problems[0].startswith("a.yaml:4:")
    assert info.value.problems[1].startswith("b.yaml:")


def test_policy_hash_is_sha256_of_the_files(tmp_path: Path) -> None:
    a, b = tmp_path / "a.yaml", tmp_path / "b.yaml"
    a.write_text(GOOD, encoding="utf-8")
    b.write_text(GOOD.replace("policy: p", "policy: q").replace("id: a", "id: b"), "utf-8")
    engine = PolicyEngine.load([a, b])
    assert engine.policy_hash == hashlib.sha256(a.read_bytes() + b.read_bytes()).hexdigest()


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30s", 30.0), ("2m", 120.0), ("1.5s", 1.5), ("500ms", 0.5), ("1h", 3600.0)],
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("bad", ["0s", "-3s", "3", 3, "3 sec", "", True])
def test_bad_durations(bad: object) -> None:
    with pytest.raises(ValueError):
        parse_duration(bad)
