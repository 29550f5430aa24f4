"""``callsense dialogue test`` and ``callsense intents classify`` through the real CLI."""

from __future__ import annotations

from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from callsense.connectors import cli_dialogue

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "configs" / "dialogue_tests" / "shipped_flow.yaml"


@pytest.fixture(scope="module")
def app() -> typer.Typer:
    app = typer.Typer()
    app.command("noop")(lambda: None)  # a group needs a second command to keep its name
    cli_dialogue.register(app)
    return app


def test_shipped_tests_pass(app: typer.Typer) -> None:
    result = CliRunner().invoke(app, ["dialogue", "test", str(SHIPPED)])
    assert result.exit_code == 0, result.output
    assert "0 failed" in result.output and "PASS" in result.output and "FAIL" not in result.output


def test_failing_test_prints_a_diff_and_exits_1(app: typer.Typer, tmp_path: Path) -> None:
    case = tmp_path / "t.yaml"
    case.write_text(
        f"dialogue: {ROOT / 'configs' / 'dialogue.yaml'}\n"
        "tests:\n"
        "  - name: wrong expectation\n"
        "    lang: en\n"
        "    turns:\n"
        "      - {emotion: ANGRY, text: hi, expect: ['Calm down please.']}\n"
        "  - name: right expectation\n"
        "    lang: en\n"
        "    turns:\n"
        "      - {emotion: ANGRY, text: hi, expect: [{template: deescalate}]}\n",
        encoding="utf-8",
    )
    result = CliRunner().invoke(app, ["dialogue", "test", str(case)])
    assert result.exit_code == 1, result.output
    assert f"FAIL {case}:3 wrong expectation" in result.output
    assert "turn 1 (line 6): replies differ" in result.output
    assert "- * [*] Calm down please." in result.output
    assert "+ deescalate [en] I'm sorry for the trouble." in result.output
    assert f"PASS {case}:7 right expectation" in result.output
    assert "1 passed, 1 failed" in result.output


def test_broken_test_file_exits_2_with_file_line(app: typer.Typer, tmp_path: Path) -> None:
    case = tmp_path / "t.yaml"
    case.write_text(
        f"dialogue: {ROOT / 'configs' / 'dialogue.yaml'}\n"
        "tests:\n  - name: x\n    turns:\n      - {emotion: ANGRY, text: hi}\n",
        encoding="utf-8",
    )
    result = CliRunner().invoke(app, ["dialogue", "test", str(case)])
    assert result.exit_code == 2
    assert f"{case}:5: tests[0].turns[0].expect" in result.output


def test_intents_classify(app: typer.Typer) -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["intents", "classify", "我 要 转 人工", "--lang", "zh"])
    assert result.exit_code == 0, result.output
    assert result.output.split("\t")[:2] == ["speak_to_human", "0.90"]
    result = runner.invoke(app, ["intents", "classify", "what a lovely day"])
    assert result.exit_code == 1 and "no intent" in result.output


def test_intents_classify_bad_config_exits_2(app: typer.Typer, tmp_path: Path) -> None:
    cfg = tmp_path / "i.yaml"
    cfg.write_text(
        "intents:\n  x:\n    patterns: {en: ['(']}\nhooks: [{name: k, type: keywords}]\n"
    )
    result = CliRunner().invoke(app, ["intents", "classify", "hi", "--config", str(cfg)])
    assert result.exit_code == 2
    assert f"{cfg}:3: intents.x.patterns.en[0]" in result.output
