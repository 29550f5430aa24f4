"""YAML dialogue tests: utterances and decisions in, expected replies out.

Users write these like policy tests. A file::

    dialogue: ../dialogue.yaml     # relative to this file
    intents: ../intents.yaml       # optional: classify turns that give no intent
    tests:
      - name: angry customer is calmed down
        lang: en
        variables: {customer_name: Ann}
        start: ["Hello Ann, ...", {template: disclosure}]   # optional check of start()
        turns:
          - {emotion: ANGRY, text: "this is ridiculous", expect: [{template: deescalate}]}
          - decisions: [{rule: angry3, action: escalate}]
            expect: ["I'm connecting you ..."]
            state: open

An expected reply is its exact text, or a mapping checking some of text, template,
reason, lang. ``expect: []`` means the bot must stay silent.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from callsense.core.errors import ConfigError
from callsense.core.yamlsource import Located, load_yaml, validate_data
from callsense.pipeline.dialogue.config import Emotion, Event
from callsense.pipeline.dialogue.manager import DialogueManager, Reply
from callsense.pipeline.model import Utterance
from callsense.pipeline.nlu.chain import IntentClassifier

__all__ = ["CaseResult", "DialogueTestFile", "run_test_file"]

_UNSET = "__unset__"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ExpectedReply(_Strict):
    text: str | None = None
    template: str | None = None
    reason: str | None = None
    lang: str | None = None


class TestDecision(_Strict):
    rule: str = "test"
    action: Literal["escalate", "mark", "route", "tag", "reply", "webhook"]
    params: dict[str, Any] = Field(default_factory=dict)


class Turn(_Strict):
    speaker: Literal["customer", "agent", "unknown"] = "customer"
    source: Literal["speech", "sound"] = "speech"
    text: str = ""
    lang: str | None = None
    emotion: Emotion | None = "NEUTRAL"
    event: Event | None = "Speech"
    intent: str | None = _UNSET
    start: float | None = None
    end: float | None = None
    decisions: list[TestDecision] = Field(default_factory=list)
    expect: list[str | ExpectedReply]
    state: str | None = None


class Case(_Strict):
    name: str
    lang: str | None = None
    call_id: str = "test-call"
    variables: dict[str, str] = Field(default_factory=dict)
    start: list[str | ExpectedReply] | None = None
    turns: list[Turn] = Field(min_length=1)


class DialogueTestFile(_Strict):
    dialogue: str | None = None
    intents: str | None = None
    tests: list[Case] = Field(min_length=1)


@dataclass(frozen=True, slots=True)
class CaseResult:
    file: str
    line: int | None
    name: str
    passed: bool
    diff: tuple[str, ...] = field(default=())


@dataclass(frozen=True, slots=True)
class _Decision:
    rule: str
    action: str
    params: dict[str, Any]


def _render(r: Reply) -> str:
    return f"{r.template} [{r.lang}] {r.text}"


def _render_expected(e: str | ExpectedReply) -> str:
    if isinstance(e, str):
        return f"* [*] {e}"
    text = e.text if e.text is not None else "*"
    return f"{e.template or '*'} [{e.lang or '*'}] {text}" + (f" ({e.reason})" if e.reason else "")


def _same(e: str | ExpectedReply, r: Reply) -> bool:
    if isinstance(e, str):
        return e == r.text
    return all(
        want is None or want == got
        for want, got in (
            (e.text, r.text),
            (e.template, r.template),
            (e.reason, r.reason),
            (e.lang, r.lang),
        )
    )


def _compare(label: str, expected: list[str | ExpectedReply], got: list[Reply]) -> list[str]:
    if len(expected) == len(got) and all(_same(e, r) for e, r in zip(expected, got, strict=True)):
        return []
    lines = [f"{label}: replies differ (- expected, + got)"]
    for d in difflib.ndiff([_render_expected(e) for e in expected], [_render(r) for r in got]):
        if d[:1] in "-+":
            lines.append("    " + d)
    if len(lines) == 1:  # same rendering but a reason differs
        lines += ["    - " + _render_expected(e) for e in expected]
        lines += ["    + " + f"{_render(r)} ({r.reason})" for r in got]
    return lines


def run_test_file(
    path: str | Path,
    *,
    dialogue: str | Path | None = None,
    intents: str | Path | None = None,
) -> list[CaseResult]:
    """Run every case of one test file; config problems raise ``ConfigError``."""
    src: Located = load_yaml(path)
    spec = validate_data(DialogueTestFile, src)
    base = Path(path).parent
    dialogue_path = (
        Path(dialogue) if dialogue else (base / spec.dialogue if spec.dialogue else None)
    )
    if dialogue_path is None:
        raise ConfigError(
            "no dialogue file: set dialogue: in the test file or pass --dialogue",
            file=src.file,
            line=1,
            field="dialogue",
        )
    intents_path = Path(intents) if intents else (base / spec.intents if spec.intents else None)
    nlu = IntentClassifier.load(intents_path) if intents_path else None
    try:
        dm = DialogueManager.load(dialogue_path, intents=nlu.intent_names if nlu else None)
        return [_run_case(dm, nlu, src, i, case) for i, case in enumerate(spec.tests)]
    finally:
        if nlu is not None:
            nlu.close()


def _run_case(
    dm: DialogueManager, nlu: IntentClassifier | None, src: Located, index: int, case: Case
) -> CaseResult:
    diff: list[str] = []
    session = dm.open(case.call_id, case.lang, variables=case.variables)
    started = session.start()
    if case.start is not None:
        diff += _compare("start", case.start, started)
    clock = 0.0
    for t, turn in enumerate(case.turns):
        start = turn.start if turn.start is not None else clock
        end = turn.end if turn.end is not None else start + 2.0
        clock = end + 0.5
        utt = Utterance(
            call_id=case.call_id,
            channel=1 if turn.speaker == "customer" else 0,
            speaker=turn.speaker,
            start=start,
            end=end,
            source=turn.source,
            lang=turn.lang or case.lang,
            emotion=turn.emotion,
            event=turn.event,
            text=turn.text,
            raw="",
        )
        intent: str | None
        if turn.intent != _UNSET:
            intent = turn.intent
        elif nlu is not None:
            found = nlu.classify(utt).intent
            intent = found.name if found else None
        else:
            intent = None
        decisions = [_Decision(d.rule, d.action, dict(d.params)) for d in turn.decisions]
        line = src.line_of(("tests", index, "turns", t))
        got = session.on_utterance(utt, intent, decisions)
        label = f"turn {t + 1} (line {line})" + (f" intent={intent}" if intent else "")
        diff += _compare(label, turn.expect, got)
        if turn.state is not None and turn.state != session.state:
            diff.append(f"{label}: state is {session.state!r}, expected {turn.state!r}")
    return CaseResult(
        file=src.file,
        line=src.line_of(("tests", index)),
        name=case.name,
        passed=not diff,
        diff=tuple(diff),
    )
