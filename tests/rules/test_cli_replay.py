"""``callsense policy ...`` and ``callsense replay`` end to end on files the test writes."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from callsense.connectors.cli import app

ROOT = Path(__file__).resolve().parents[2]
DEFAULT = ROOT / "configs" / "policies" / "default.yaml"
runner = CliRunner()


def _line(call: str, start: float, raw: str, speaker: str = "customer") -> str:
    return json.dumps(
        {
            "call_id": call,
            "channel": 0,
            "speaker": speaker,
            "start": start,
            "end": start + 1.5,
            "raw": raw,
        },
        ensure_ascii=False,
    )


ANGRY = "<|en|><|ANGRY|><|Speech|><|withitn|>This is not acceptable."
LAUGH = "<|en|><|HAPPY|><|Laughter|><|withitn|>Ha, fine."


def _transcripts(tmp_path: Path) -> Path:
    lines = [
        _line("a", 0, ANGRY),
        _line("a", 2, ANGRY),
        _line("a", 4, ANGRY),
        "{not json",
        _line("b", 0, LAUGH),
        _line("b", 2, "<|en|><|NEUTRAL|><|Speech|><|withitn|>ok", "agent"),
    ]
    path = tmp_path / "calls.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_replay_writes_decisions_and_reports_bad_lines(tmp_path: Path) -> None:
    out = tmp_path / "decisions.jsonl"
    result = runner.invoke(
        app, ["replay", str(_transcripts(tmp_path)), "--policy", str(DEFAULT), "--out", str(out)]
    )
    assert result.exit_code == 1  # a malformed line was reported; the calls were still run
    assert "calls.jsonl:4" in result.stderr
    decisions = [json.loads(x) for x in out.read_text(encoding="utf-8").splitlines()]
    assert [(d["call_id"], d["rule"], d["at"]) for d in decisions] == [
        ("a", "angry-streak", 5.5),
        ("b", "laughter-satisfaction", 1.5),
    ]
    assert set(decisions[0]) == {
        "call_id",
        "policy",
        "rule",
        "action",
        "params",
        "at",
        "evidence",
        "policy_hash",
    }
    assert "2 calls" in result.stdout


def test_policy_check_exit_codes(tmp_path: Path) -> None:
    assert runner.invoke(app, ["policy", "check", str(DEFAULT)]).exit_code == 0
    bad = tmp_path / "bad.yaml"
    bad.write_text(DEFAULT.read_text(encoding="utf-8").replace("ANGRY", "ANGRI"), "utf-8")
    result = runner.invoke(app, ["policy", "check", str(bad)])
    assert result.exit_code == 1
    assert f"{bad}:" in result.stderr and "did you mean ANGRY?" in result.stderr


def test_policy_schema_is_json_schema() -> None:
    result = runner.invoke(app, ["policy", "schema"])
    schema = json.loads(result.stdout)
    assert {"policy", "rules", "skip"} <= set(schema["properties"])


def test_policy_test_passes_shipped_suite_and_fails_a_wrong_one(tmp_path: Path) -> None:
    suite = ROOT / "configs" / "policies" / "tests"
    for engine in ("python", "durable"):
        result = runner.invoke(app, ["policy", "test", str(suite), "--engine", engine])
        assert result.exit_code == 0, result.stdout
    wrong = tmp_path / "w.test.yaml"
    wrong.write_text(
        f"policies: [{DEFAULT}]\ncases:\n  - name: wrong\n    utterances: [{{emotion: ANGRY}}]\n"
        "    expect: [{rule: angry-streak}]\n",
        encoding="utf-8",
    )
    result = runner.invoke(app, ["policy", "test", str(wrong)])
    assert result.exit_code == 1
    assert "FAIL" in result.stdout and "- angry-streak" in result.stdout


def test_policy_diff_names_the_calls_that_change(tmp_path: Path) -> None:
    calls = tmp_path / "calls"
    calls.mkdir()
    _transcripts(calls)
    new = tmp_path / "new.yaml"
    new.write_text(
        DEFAULT.read_text(encoding="utf-8").replace("consecutive: 3", "consecutive: 4"),
        encoding="utf-8",
    )
    result = runner.invoke(app, ["policy", "diff", str(DEFAULT), str(new), "--calls", str(calls)])
    assert "a: 1 -> 0 decision(s)" in result.stdout
    assert "1 of 2 call(s) change" in result.stdout


INTENT_POLICY = """\
policy: human
rules:
  - id: wants-a-human
    when: {speaker: customer, intent: speak_to_human}
    once: true
    then:
      - escalate: {priority: high, reason: asked for a person}
"""


def test_replay_and_diff_run_the_nlu_before_the_rules(tmp_path: Path) -> None:
    """As in a live call, the shipped intents classify each utterance first, so a policy
    on ``intent:`` fires in a replay and shows up in a backtest."""
    policy = tmp_path / "human.yaml"
    policy.write_text(INTENT_POLICY, encoding="utf-8")
    calls = tmp_path / "calls.jsonl"
    ask = "<|en|><|NEUTRAL|><|Speech|><|withitn|>Can I speak to a real person, please?"
    lines = [
        _line("h", 0, "<|en|><|NEUTRAL|><|Speech|><|withitn|>Hello."),
        _line("h", 2, ask),
        _line("h", 4, ask, "agent"),  # NLU listens to customers only
        _line("n", 0, "<|en|><|NEUTRAL|><|Speech|><|withitn|>Thanks, bye."),
    ]
    calls.write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = tmp_path / "decisions.jsonl"
    result = runner.invoke(app, ["replay", str(calls), "--policy", str(policy), "--out", str(out)])
    assert result.exit_code == 0, result.output
    decisions = [json.loads(x) for x in out.read_text(encoding="utf-8").splitlines()]
    assert [(d["call_id"], d["rule"], d["at"]) for d in decisions] == [("h", "wants-a-human", 3.5)]

    diff = runner.invoke(app, ["policy", "diff", str(DEFAULT), str(policy), "--calls", str(calls)])
    assert diff.exit_code == 0, diff.output
    assert "h: 0 -> 1 decision(s)" in diff.stdout
