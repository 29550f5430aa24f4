"""The shipped YAML policy tests pass on both backends, and a wrong expectation fails."""

from __future__ import annotations

from pathlib import Path

import pytest

from callsense.rules.engine import BACKENDS
from callsense.rules.testing import run_policy_tests, run_test_file

ROOT = Path(__file__).resolve().parents[2]
SUITE = sorted((ROOT / "configs" / "policies" / "tests").glob("*.test.yaml"))


@pytest.mark.parametrize("backend", BACKENDS)
def test_shipped_policy_tests_pass(backend: str) -> None:
    results, errors = run_policy_tests(list(SUITE), backend=backend)
    assert not errors
    assert len(results) >= 30
    failed = [(r.name, r.diff) for r in results if not r.passed]
    assert not failed


def test_backends_give_identical_decisions_on_the_suite() -> None:
    from callsense.core.yamlsource import validate
    from callsense.rules.engine import PolicyEngine
    from callsense.rules.testing import PolicyTestFile, observations

    for path in SUITE:
        spec = validate(PolicyTestFile, path)
        policies = [path.parent / p for p in spec.policies]
        engines = [PolicyEngine.load(policies, backend=b) for b in BACKENDS]
        for i, case in enumerate(spec.cases):
            obs = observations(f"c{i}", case.utterances)
            runs = [[d.to_dict() for d in e.run(f"c{i}", obs, case.call_end)] for e in engines]
            assert runs[0] == runs[1], case.name
        for e in engines:
            e.close()


def test_a_wrong_expectation_fails_with_a_readable_diff(tmp_path: Path) -> None:
    (tmp_path / "p.yaml").write_text(
        (ROOT / "configs" / "policies" / "default.yaml").read_text(encoding="utf-8"),
        encoding="utf-8",
    )
    (tmp_path / "t.test.yaml").write_text(
        "policies: [p.yaml]\n"
        "cases:\n"
        "  - name: off by one\n"
        "    utterances: [{emotion: ANGRY}, {emotion: ANGRY}, {emotion: ANGRY}]\n"
        "    expect: [{rule: angry-streak, at: 4}]\n",
        encoding="utf-8",
    )
    [result] = run_test_file(tmp_path / "t.test.yaml")
    assert not result.passed
    assert result.line == 3
    assert result.diff[0] == "- angry-streak at=4"
    assert result.diff[1].startswith("+ angry-streak escalate at=6 ")
    assert result.diff[1].endswith("evidence=[0,1,2]")
