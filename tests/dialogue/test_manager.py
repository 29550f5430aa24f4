"""The dialogue manager: the shipped flow, its YAML tests, and load-time errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from callsense.core.errors import ConfigError, InputError
from callsense.pipeline.dialogue import DialogueManager, Reply
from callsense.pipeline.dialogue.testing import run_test_file
from callsense.pipeline.model import Utterance
from callsense.pipeline.nlu import Intent, IntentClassifier
from callsense.rules.model import Decision

ROOT = Path(__file__).resolve().parents[2]
DIALOGUE = ROOT / "configs" / "dialogue.yaml"
INTENTS = ROOT / "configs" / "intents.yaml"
SHIPPED_TESTS = sorted((ROOT / "configs" / "dialogue_tests").glob("*.yaml"))


@pytest.fixture(scope="module")
def dm() -> DialogueManager:
    return DialogueManager.load(DIALOGUE, intents=IntentClassifier.load(INTENTS).intent_names)


def utt(
    text: str = "",
    *,
    speaker: str = "customer",
    emotion: str | None = "NEUTRAL",
    event: str | None = "Speech",
    lang: str | None = "en",
    start: float = 1.0,
    source: str = "speech",
) -> Utterance:
    return Utterance(
        "call-1",
        1,
        speaker,
        start,
        start + 2.0,
        source,
        lang,
        emotion,
        event,
        text,
        "",  # type: ignore[arg-type]
    )


@pytest.mark.parametrize("path", SHIPPED_TESTS, ids=lambda p: p.name)
def test_shipped_dialogue_tests_pass(path: Path) -> None:
    results = run_test_file(path)
    assert results, path
    failed = [f"{r.name}: {r.diff}" for r in results if not r.passed]
    assert not failed


def test_three_angry_utterances_then_escalation_with_real_decision(dm: DialogueManager) -> None:
    session = dm.open("call-1", "en")
    start = session.start()
    assert [r.template for r in start] == ["greeting", "disclosure"]
    replies: list[Reply] = []
    for i in range(3):
        u = utt("you people never fix anything", emotion="ANGRY", start=10.0 + 5 * i)
        decisions = []
        if i == 2:
            decisions = [
                Decision(
                    "call-1",
                    "angry",
                    "three_angry",
                    "escalate",
                    {"priority": "high"},
                    u.end,
                    (),
                    "h",
                )
            ]
        replies += session.on_utterance(u, None, decisions)
    assert [(r.template, r.reason, r.at) for r in replies] == [
        ("deescalate", "behaviour:deescalate", 12.0),
        ("handoff", "behaviour:handoff", 22.0),
    ]
    assert "customer care" in replies[1].text
    assert session.ended
    assert session.on_utterance(utt("hello?", emotion="ANGRY", start=40), None) == []


def test_replies_follow_the_customers_language(dm: DialogueManager) -> None:
    session = dm.open("c", "en")
    out = session.on_utterance(utt("我要退款", lang="zh"), Intent("refund", 0.9, "keywords"))
    assert [(r.template, r.lang) for r in out] == [("refund_ack", "zh")]
    assert session.lang == "zh"
    # a laugh has no language: the reply keeps the last spoken one
    out = session.on_utterance(
        utt(lang="nospeech", event="Laughter", source="sound", start=9), None
    )
    assert [(r.template, r.lang) for r in out] == [("closing", "zh")]
    # a language with no templates and no fallback gets the default
    other = dm.open("c2", "ja")
    assert {r.lang for r in other.start()} == {"en"}


def test_route_decision_fills_queue_variable(dm: DialogueManager) -> None:
    session = dm.open("c", "en")
    decisions = [
        Decision("c", "p", "vip", "route", {"queue": "VIP desk"}, 3.0, (), "h"),
        Decision("c", "p", "vip", "escalate", {"priority": "urgent"}, 3.0, (), "h"),
    ]
    out = session.on_utterance(utt("hm"), None, decisions)
    assert [r.text for r in out] == [
        "I'm connecting you with a colleague from VIP desk who can help you right away."
    ]


def test_deterministic(dm: DialogueManager) -> None:
    def run() -> list[Reply]:
        s = dm.open("c", "en", variables={"customer_name": "Bo"})
        out = s.start()
        for i, (text, emo) in enumerate(
            [("cancel it", "ANGRY"), ("why", "ANGRY"), ("ok thanks", "HAPPY")]
        ):
            intent = IntentClassifier.load(INTENTS).classify_text(text, "en").intent
            out += s.on_utterance(utt(text, emotion=emo, start=3.0 * i), intent)
        return out

    first = run()
    assert first == run()
    assert [r.template for r in first] == [
        "greeting",
        "disclosure",
        "deescalate",
        "cancel_ack",
        "goodbye",
    ]


def test_unknown_open_variable_is_an_input_error(dm: DialogueManager) -> None:
    with pytest.raises(InputError, match="customer_nam"):
        dm.open("c", "en", variables={"customer_nam": "x"})


def test_disclosure_can_be_disabled(tmp_path: Path) -> None:
    text = DIALOGUE.read_text("utf-8").replace(
        "disclosure:\n  enabled: true", "disclosure:\n  enabled: false"
    )
    dm = DialogueManager.from_text(text, "d.yaml")
    session = dm.open("c")
    assert [r.template for r in session.start()] == ["greeting"]
    assert session.disclosure() is None


MINIMAL = """\
start: {state: open}
states:
  open:
    transitions:
      - when: {intent: cancel}
        say: bye
        goto: open
templates:
  greeting: {en: hi, zh: 你好}
  disclosure: {en: d, zh: d}
  deescalate: {en: d, zh: d}
  handoff: {en: d, zh: d}
  closing: {en: d, zh: d}
  bye: {en: bye, zh: 再见}
"""


def _problems(text: str, **kw: object) -> list[str]:
    with pytest.raises(ConfigError) as info:
        DialogueManager.from_text(text, "flow.yaml", **kw)  # type: ignore[arg-type]
    return info.value.problems


def test_minimal_flow_loads_and_runs() -> None:
    dm = DialogueManager.from_text(MINIMAL, "flow.yaml")
    assert dm.template_names == {
        "greeting",
        "disclosure",
        "deescalate",
        "handoff",
        "closing",
        "bye",
    }
    session = dm.open("c", "zh")
    assert [(r.template, r.text) for r in session.start()] == [
        ("greeting", "你好"),
        ("disclosure", "d"),
    ]
    assert session.on_utterance(utt("hmm"), None) == []  # no transition matches
    out = session.on_utterance(utt("cancel it", start=5.0), Intent("cancel", 0.9, "keywords"))
    assert [(r.template, r.text, r.at) for r in out] == [("bye", "bye", 7.0)]
    assert session.state == "open" and not session.ended


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        (
            "goto: open",
            "goto: opne",
            "flow.yaml:7: states.open.transitions[0].goto: no state named 'opne'; "
            "did you mean 'open'?",
        ),
        (
            "bye: {en: bye, zh: 再见}",
            "bye: {en: bye}",
            "flow.yaml:14: templates.bye: missing language(s) zh",
        ),
        (
            "bye: {en: bye,",
            "bye: {en: 'bye {nme}',",
            "flow.yaml:14: templates.bye.en: unknown variable {nme}",
        ),
        (
            "bye: {en: bye,",
            "bye: {en: 'bye {x:>5}',",
            "flow.yaml:14: templates.bye.en: {x:>5} is not a plain {variable}",
        ),
        (
            "say: bye",
            "say: by",
            "flow.yaml:6: states.open.transitions[0].say[0]: no template named 'by'; "
            "did you mean 'bye'?",
        ),
        ("{intent: cancel}", "{emotion: ANGRYY}", "flow.yaml:5: states.open.transitions[0].when"),
        (
            "start: {state: open}",
            "start: {state: nowhere}",
            "flow.yaml:1: start.state: no state named 'nowhere'",
        ),
        (
            "goto: open",
            "set: {topic: x}",
            "flow.yaml:7: states.open.transitions[0].set.topic: "
            "'topic' is not declared under slots:",
        ),
        (
            "  greeting: {en: hi, zh: 你好}\n",
            "",
            "flow.yaml:1: start.say[0]: no template named 'greeting'",
        ),
    ],
)
def test_misconfigured_flow_fails_at_load_with_line(old: str, new: str, expected: str) -> None:
    assert old in MINIMAL
    problems = _problems(MINIMAL.replace(old, new))
    assert any(p.startswith(expected) for p in problems), problems
    if "ANGRYY" in new:
        assert len(problems) == 1
        assert (
            "emotion" in problems[0]
            and "unknown emotion 'ANGRYY'; did you mean 'ANGRY'?" in problems[0]
        )


def test_unknown_intent_is_caught_when_intents_are_given() -> None:
    problems = _problems(MINIMAL, intents=["refund"])
    assert problems[0].startswith(
        "flow.yaml:5: states.open.transitions[0].when.intent: unknown intent 'cancel'"
    )


def test_missing_behaviour_template_is_named() -> None:
    problems = _problems(MINIMAL.replace("  handoff: {en: d, zh: d}\n", ""))
    assert any("behaviours.handoff.say[0]: no template named 'handoff'" in p for p in problems)
    # disabling the behaviour makes the template unnecessary
    DialogueManager.from_text(
        MINIMAL.replace("  handoff: {en: d, zh: d}\n", "") + "behaviours: {handoff: null}\n",
        "f.yaml",
    )
