"""Lint warnings point at the rule's line and say what is wrong."""

from __future__ import annotations

from callsense.rules.lint import lint
from callsense.rules.loader import load_policy_texts

TEXT = """\
policy: x
skip: [{event: BGM}]
rules:
  - id: music
    when: {event: BGM}
    then: [{tag: t}]
  - id: both
    when: {all: [{emotion: ANGRY}, {emotion: HAPPY}]}
    once: true
    cooldown: 3s
    then: [{tag: t}]
  - id: self-denying
    when: {emotion: ANGRY, not: {emotion: ANGRY}}
    then: [{tag: t}]
  - id: empty-regex
    when: {text: {regex: "a*"}}
    then: [{tag: t}]
  - id: fine
    when: {speaker: customer, any: [{emotion: ANGRY}, {text: {keywords: [manager]}}]}
    then: [{tag: t}]
"""


def test_lint_warnings() -> None:
    warnings = [str(w) for w in lint(load_policy_texts([(TEXT, "x.yaml")]))]
    assert warnings == [
        "x.yaml:5: rules[0].when: unreachable rule: every utterance it matches is skipped "
        "by the policy's skip:",
        "x.yaml:8: rules[1].when: contradictory conditions: no utterance can satisfy them, "
        "the rule never fires",
        "x.yaml:10: rules[1].cooldown: cooldown has no effect on a rule with once: true",
        "x.yaml:13: rules[2].when: contradictory conditions: no utterance can satisfy them, "
        "the rule never fires",
        "x.yaml:16: rules[3].when.text.regex: this regex matches empty text, so it matches "
        "every utterance",
    ]


def test_shipped_default_policy_is_clean() -> None:
    from pathlib import Path

    from callsense.rules.loader import load_policies

    root = Path(__file__).resolve().parents[2] / "configs" / "policies"
    assert lint(load_policies([root / "default.yaml"])) == []
