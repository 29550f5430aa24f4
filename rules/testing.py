"""Policy tests users write in YAML: utterances in, expected decisions out.

A test file names the policy files it tests (relative to itself) and lists cases::

    policies: [../default.yaml]
    cases:
      - name: three angry customer utterances escalate
        utterances:
          - {emotion: ANGRY}                      # speaker customer, 2 s long, after the last
          - {speaker: agent}
          - {raw: "<|en|><|ANGRY|><|Speech|><|withitn|>This is absurd.", start: 4, end: 6}
          - {emotion: ANGRY}
        expect:
          - {rule: angry-streak, action: escalate, at: 8, evidence: [0, 2, 3]}

An utterance's ``seq`` is its index in the list. ``expect`` is compared in order; each
entry checks only the keys it gives. A failing case yields a readable diff.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic.json_schema import SkipJsonSchema

from callsense.core.errors import ConfigError
from callsense.core.richtext import parse, parse_one
from callsense.core.vocab import Speaker
from callsense.core.wire import Seconds, UtteranceRecord
from callsense.core.yamlsource import load_yaml, validate_data
from callsense.rules.engine import DEFAULT_BACKEND, PolicyEngine
from callsense.rules.model import Decision, Observation

__all__ = ["CaseResult", "PolicyTestFile", "TestUtterance", "parse_raw", "run_policy_tests"]


def parse_raw(raw: str) -> dict[str, str | None]:
    """One SenseVoice group ``<|en|><|ANGRY|><|Speech|><|withitn|>text`` -> its tags and text,
    read by the one parser (``core.richtext``); an unknown tag or several groups in one
    test record is an error here, since a policy test must say exactly what it means."""
    groups = parse(raw)
    if len(groups) > 1:
        raise ValueError("several SenseVoice groups in one record; give one per utterance")
    group = groups[0] if groups else parse_one(raw)
    if group.unknown_tags:
        raise ValueError(f"unknown SenseVoice tag <|{group.unknown_tags[0]}|>")
    return {"lang": group.lang, "emotion": group.emotion, "event": group.event,
            "text": group.text.strip()}  # fmt: skip


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TestUtterance(UtteranceRecord):
    """One test utterance: the wire record, with everything it does not state defaulted.

    A subclass because a test says only what matters (``{emotion: ANGRY}``): times continue
    2 s after the previous utterance, the speaker is the customer and omitted tags are
    neutral speech (or an unknown sound); the runner names the call; a misspelt key is an
    error (not ignored as in JSONL); ``intent`` stands in for an NLU hook's answer; and
    ``raw``, if given, must be the whole story (one group, no other tags).
    """

    model_config = ConfigDict(strict=False, extra="forbid")

    call_id: SkipJsonSchema[str] = ""
    original: SkipJsonSchema[str | None] = None
    channel: int = Field(default=0, ge=0)
    speaker: Speaker = "customer"
    start: Seconds | None = None  # type: ignore[assignment]
    end: Seconds | None = None  # type: ignore[assignment]
    intent: str | None = None

    @field_validator("call_id", "original")
    @classmethod
    def _not_given(cls, value: object) -> object:  # runs only for a key a test gives
        raise ValueError("not part of a test utterance; the runner names the call")

    @model_validator(mode="after")
    def _consistent(self) -> TestUtterance:  # replaces the record's check of the same name
        if self.raw is not None:
            if any(v is not None for v in (self.lang, self.emotion, self.event, self.text)):
                raise ValueError("give raw or lang/emotion/event/text, not both")
            parse_raw(self.raw)  # raises ValueError -> a file:line error
        if self.start is not None and self.end is not None and self.end < self.start:
            raise ValueError(f"end ({self.end}) is before start ({self.start})")
        return self

    def record(self, call_id: str, after: float) -> UtteranceRecord:
        """The wire record this utterance stands for, ``after`` the previous one's end."""
        start = self.start if self.start is not None else after
        end = self.end if self.end is not None else start + 2.0
        if self.raw is not None:
            tags = parse_raw(self.raw)
        else:
            speech = self.source == "speech"
            tags = {
                "lang": self.lang or ("en" if speech else "nospeech"),
                "emotion": self.emotion or ("NEUTRAL" if speech else "EMO_UNKNOWN"),
                "event": self.event or ("Speech" if speech else "Event_UNK"),
                "text": self.text or "",
            }
        return UtteranceRecord.model_construct(  # every value is checked already
            call_id=call_id, channel=self.channel, speaker=self.speaker, start=start, end=end,
            source=self.source, raw=self.raw, confidence=self.confidence, **tags,
        )  # fmt: skip


class ExpectedDecision(_Strict):
    rule: str
    action: str | None = None
    at: float | None = None
    params: dict[str, Any] | None = None
    evidence: list[int] | None = None


class TestCase(_Strict):
    name: Annotated[str, Field(min_length=1)]
    utterances: list[TestUtterance]
    call_end: float | None = None
    expect: list[ExpectedDecision]


class PolicyTestFile(_Strict):
    policies: Annotated[list[str], Field(min_length=1)]
    cases: Annotated[list[TestCase], Field(min_length=1)]


@dataclass(frozen=True, slots=True)
class CaseResult:
    file: str
    line: int | None
    name: str
    passed: bool
    diff: tuple[str, ...] = ()


def observations(call_id: str, utterances: Sequence[TestUtterance]) -> list[Observation]:
    """A case's utterances as the rules see them, each after the previous one."""
    out: list[Observation] = []
    end = 0.0
    for seq, utt in enumerate(utterances):
        record = utt.record(call_id, end)
        out.append(Observation.of(record, seq, utt.intent))
        end = record.end
    return out


def _describe(d: Decision) -> str:
    seqs = ",".join(str(e.seq) for e in d.evidence)
    return f"{d.rule} {d.action} at={d.at:g} params={d.params} evidence=[{seqs}]"


def _expected_text(e: ExpectedDecision) -> str:
    parts = [e.rule]
    if e.action is not None:
        parts.append(e.action)
    if e.at is not None:
        parts.append(f"at={e.at:g}")
    if e.params is not None:
        parts.append(f"params={e.params}")
    if e.evidence is not None:
        parts.append(f"evidence=[{','.join(map(str, e.evidence))}]")
    return " ".join(parts)


def _matches(e: ExpectedDecision, d: Decision) -> bool:
    return (
        e.rule == d.rule
        and (e.action is None or e.action == d.action)
        and (e.at is None or abs(e.at - d.at) < 1e-9)
        and (e.params is None or e.params == d.params)
        and (e.evidence is None or e.evidence == [x.seq for x in d.evidence])
    )


def _diff(expected: list[ExpectedDecision], actual: list[Decision]) -> tuple[str, ...]:
    lines: list[str] = []
    for i in range(max(len(expected), len(actual))):
        e = expected[i] if i < len(expected) else None
        d = actual[i] if i < len(actual) else None
        if e is not None and d is not None and _matches(e, d):
            lines.append(f"  {_describe(d)}")
            continue
        if e is not None:
            lines.append(f"- {_expected_text(e)}")
        if d is not None:
            lines.append(f"+ {_describe(d)}")
    return tuple(lines)


def run_test_file(path: str | Path, *, backend: str = DEFAULT_BACKEND) -> list[CaseResult]:
    """Run every case of one test file; ``ConfigError`` if the file or its policies are bad."""
    located = load_yaml(path)
    spec = validate_data(PolicyTestFile, located)
    base = Path(path).parent
    engine = PolicyEngine.load([base / p for p in spec.policies], backend=backend)
    results: list[CaseResult] = []
    try:
        for i, case in enumerate(spec.cases):
            call_id = f"test-{i}"
            decisions = engine.run(call_id, observations(call_id, case.utterances), case.call_end)
            passed = len(decisions) == len(case.expect) and all(
                _matches(e, d) for e, d in zip(case.expect, decisions, strict=True)
            )
            results.append(
                CaseResult(
                    file=str(path),
                    line=located.line_of(("cases", i)),
                    name=case.name,
                    passed=passed,
                    diff=() if passed else _diff(case.expect, decisions),
                )
            )
    finally:
        engine.close()
    return results


def run_policy_tests(
    paths: list[str | Path], *, backend: str = DEFAULT_BACKEND
) -> tuple[list[CaseResult], list[ConfigError]]:
    """Run test files; a bad file is reported as an error and the others still run."""
    results: list[CaseResult] = []
    errors: list[ConfigError] = []
    for path in paths:
        try:
            results.extend(run_test_file(path, backend=backend))
        except ConfigError as err:
            errors.append(err)
    return results, errors
