"""The conversation-dynamics conditions: overtalk, interruptions, temperature (and hold).

Each runs on both backends with the same decisions; their YAML shape is checked with
file:line errors, exported in the JSON Schema, linted, and replayed from JSONL as a live
call would have decided. The shipped YAML examples are configs/policies/tests/dynamics.*.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from callsense.core.errors import ConfigError
from callsense.rules.engine import BACKENDS, PolicyEngine
from callsense.rules.lint import emotion_uses, lint
from callsense.rules.loader import load_policy_texts
from callsense.rules.model import Observation
from callsense.rules.schema import Policy

CUSTOMER, AGENT = ("customer", 0), ("agent", 1)


def obs(seq: int, who: tuple[str, int], start: float, end: float, **tags: str) -> Observation:
    speaker, channel = who
    return Observation("c", seq, start, end, speaker=speaker, channel=channel, **tags)


def ended(*items: tuple) -> list[Observation]:
    """Observations in the order they end (a live call's order), numbered in that order."""
    ordered = sorted(items, key=lambda i: (i[2], i[0][1]))
    return [obs(seq, who, a, b, **(tags[0] if tags else {})) for seq, (who, a, b, *tags) in
            enumerate(ordered)]  # fmt: skip


def fired(policy: str, observations: list[Observation]) -> dict[str, list[tuple]]:
    """Decisions per backend as (rule, at, evidence seqs); asserts the backends agree."""
    runs = {}
    for backend in BACKENDS:
        with PolicyEngine.from_text(policy, backend=backend) as engine:
            runs[backend] = [
                (d.rule, d.at, [e.seq for e in d.evidence]) for d in engine.run("c", observations)
            ]
    assert runs["python"] == runs["durable"]
    return runs


def rule(when: str, extra: str = "once: true", head: str = "") -> str:
    """A one-rule policy (id ``r``, tag ``t``); ``head``: policy keys before ``rules:``."""
    body = f"  - id: r\n    when: {when}\n    {extra}\n    then: [{{tag: t}}]\n"
    return f"policy: p\n{head}rules:\n{body}"


# --- overtalk -------------------------------------------------------------------------------


def test_overtalk_counts_once_both_utterances_are_in_and_within_its_window() -> None:
    policy = rule("{overtalk: {longer_than: 3s, within: 20s}}", "cooldown: 1s")
    calls = ended((CUSTOMER, 0, 10), (AGENT, 5, 9), (AGENT, 12, 13), (CUSTOMER, 25, 27))
    # the agent's 5-9 ends first, but the overlap is known when the customer's 0-10 ends;
    # 13: still 4 s within [-7, 13]; 27: the window [7, 27] holds 2 s of it
    assert fired(policy, calls)["python"] == [("r", 10, [1]), ("r", 13, [2])]


def test_short_overlaps_at_a_turn_change_are_not_overtalk() -> None:
    policy = rule("{overtalk: {longer_than: 500ms, within: 1m}}")
    turns = [(CUSTOMER, 0, 5.1), (AGENT, 4.9, 8), (CUSTOMER, 7.8, 12), (AGENT, 11.95, 15)]
    assert fired(policy, ended(*turns))["python"] == []
    assert fired(policy, ended(*turns, (AGENT, 1, 1.6)))["python"] == [("r", 5.1, [1])]


def test_overtalk_of_three_parties_counts_each_instant_once() -> None:
    policy = rule("{overtalk: {longer_than: 4s, within: 1m}}")
    third = ("unknown", 2)
    calls = ended((CUSTOMER, 0, 10), (AGENT, 2, 6), (third, 3, 7))  # both-or-more: 2..7
    assert fired(policy, calls)["python"] == [("r", 10, [2])]
    assert fired(rule("{overtalk: {longer_than: 5s, within: 1m}}"), calls)["python"] == []


# --- interruptions --------------------------------------------------------------------------


def test_interruptions_by_the_agent_within_a_window() -> None:
    policy = rule("{interruptions: {by: agent, more_than: 1, within: 30s}}", "cooldown: 1s")
    calls = ended(
        (CUSTOMER, 0, 8), (AGENT, 6, 9),  # 1: starts inside, overlaps 2 s
        (CUSTOMER, 10, 20), (AGENT, 12, 14),  # 2: inside the customer's turn, known at 20
        (AGENT, 40, 50), (CUSTOMER, 45, 52),  # the customer interrupts: not counted
        (CUSTOMER, 60, 70), (AGENT, 65, 71),  # 3: 2 is 58 s before 71, out of the window
    )  # fmt: skip
    assert fired(policy, calls)["python"] == [("r", 20, [3])]


def test_backchannels_and_simultaneous_starts_are_not_interruptions() -> None:
    policy = rule("{interruptions: {more_than: 0, within: 1m}}")
    calls = ended(
        (CUSTOMER, 0, 10), (AGENT, 3, 3.9),  # 0.9 s overlap: a backchannel
        (AGENT, 12, 20), (CUSTOMER, 12, 18),  # both start at 12: nobody started first
    )  # fmt: skip
    assert fired(policy, calls)["python"] == []
    # exactly the minimum overlap counts
    assert fired(policy, ended((CUSTOMER, 0, 10), (AGENT, 3, 4)))["python"] == [("r", 10, [1])]


def test_an_interruption_into_a_turn_split_in_two_counts_the_overlap_with_both() -> None:
    """Segmentation may cut a long turn at a pause: the two halves touch, and the agent's
    utterance that starts in the first overlaps both for 1.2 s in all."""
    policy = rule("{interruptions: {by: [agent], more_than: 0, within: 1m}}")
    calls = ended((CUSTOMER, 0, 5), (AGENT, 4.6, 5.8), (CUSTOMER, 5, 9))
    assert fired(policy, calls)["python"] == [("r", 9, [2])]


# --- temperature ----------------------------------------------------------------------------


def test_temperature_above_now() -> None:
    policy = rule("{speaker: customer, temperature: {above: 0.7}}")
    calls = ended((CUSTOMER, 0, 3, {"emotion": "ANGRY"}), (CUSTOMER, 4, 7, {"emotion": "ANGRY"}))
    # 3 s of anger: 0.5; then 0.5 cooled 1 s, + half the way to 1: ~0.747
    assert fired(policy, calls)["python"] == [("r", 7, [1])]


def test_temperature_for_a_while_ends_exactly_when_it_cools_below() -> None:
    policy = rule("{temperature: {above: 0.5, for: 30s}}")
    angry = (CUSTOMER, 0, 6, {"emotion": "ANGRY"})  # 0.75 at 6 s; cools through 0.5 at 41.1 s
    assert fired(policy, ended(angry, (AGENT, 30, 37)))["python"] == [("r", 37, [1])]
    assert fired(policy, ended(angry, (AGENT, 20, 25), (AGENT, 40, 45)))["python"] == []
    assert fired(policy, ended(angry, (AGENT, 30, 36)))["python"] == []  # 30 s, not more


def test_a_negative_threshold_is_crossed_upward_while_cooling() -> None:
    policy = rule("{temperature: {above: -0.3, for: 10s}}")
    happy = (CUSTOMER, 0, 6, {"emotion": "HAPPY"})  # -0.6 at 6 s; back above -0.3 at 66 s
    assert fired(policy, ended(happy, (AGENT, 70, 77)))["python"] == [("r", 77, [1])]
    assert fired(policy, ended(happy, (AGENT, 70, 75)))["python"] == []


def test_only_the_customer_moves_the_temperature() -> None:
    policy = rule("{temperature: {above: 0.1}}")
    calls = ended(
        (AGENT, 0, 6, {"emotion": "ANGRY"}),
        (CUSTOMER, 7, 9, {"emotion": "EMO_UNKNOWN"}),
        (CUSTOMER, 10, 20, {"event": "BGM", "emotion": "ANGRY"}),
        (CUSTOMER, 21, 22, {"source": "sound", "event": "Cough"}),
    )
    assert fired(policy, calls)["python"] == []
    laugh = ended((CUSTOMER, 0, 3, {"source": "sound", "event": "Laughter"}))
    assert fired(rule("{not: {temperature: {above: -0.4}}}"), laugh)["python"] == [("r", 3, [0])]


# --- hold ---------------------------------------------------------------------------------


def test_hold_is_the_union_of_the_skipped_spans() -> None:
    policy = rule("{hold: 20s}", "once: false", head="skip: [{event: BGM}]\n")
    music = {"source": "sound", "event": "BGM"}
    both = ended((CUSTOMER, 0, 2), (AGENT, 2, 14, music), (CUSTOMER, 3, 15, music),
                 (CUSTOMER, 15, 17))  # fmt: skip
    assert fired(policy, both)["python"] == []  # 13 s of music, not 24
    longer = ended((CUSTOMER, 0, 2), (AGENT, 2, 14, music), (AGENT, 14, 23, music),
                   (CUSTOMER, 23, 25))  # fmt: skip
    assert fired(policy, longer)["python"] == [("r", 25, [3])]


# --- the YAML: errors, JSON Schema, lint ----------------------------------------------------


@pytest.mark.parametrize(
    ("when", "expected"),
    [
        ("{overtalk: {longer_than: 1m, within: 30s}}",
         "x.yaml:4: rules[0].when.overtalk: longer_than must be shorter than within"),
        ("{overtalk: {longer_than: 3}}",
         "x.yaml:4: rules[0].when.overtalk.longer_than: write a duration as a string with a unit"),
        ("{overtalk: {longer_than: 3s}}",
         "x.yaml:4: rules[0].when.overtalk.within: Field required"),
        ("{interruptions: {by: agnet, more_than: 1, within: 1m}}",
         "x.yaml:4: rules[0].when.interruptions.by: unknown speaker 'agnet'; did you mean agent?"),
        ("{interruptions: {more_than: -1, within: 1m}}",
         "x.yaml:4: rules[0].when.interruptions.more_than: Input should be greater than or equal"),
        ("{temperature: {above: 1.0}}",
         "x.yaml:4: rules[0].when.temperature.above: Input should be less than 1"),
        ("{temperature: {above: 0.5, for_: 3s}}",
         "x.yaml:4: rules[0].when.temperature.for_: unknown field"),
    ],
)  # fmt: skip
def test_bad_dynamics_conditions_are_clear_errors(when: str, expected: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_policy_texts([(rule(when), "x.yaml")])
    assert str(err.value).startswith(expected), str(err.value)


def test_the_json_schema_names_the_new_conditions() -> None:
    schema = Policy.model_json_schema()
    defs = schema["$defs"]
    condition = defs["Condition"]["properties"]
    assert {"overtalk", "interruptions", "temperature"} <= set(condition)
    assert set(defs["TemperatureAbove"]["properties"]) == {"above", "for"}
    assert defs["Overtalk"]["required"] == ["longer_than", "within"]
    assert defs["Overtalk"]["properties"]["within"]["pattern"]


def test_lint_warns_about_a_level_without_once_or_cooldown_and_reasons_about_thresholds() -> None:
    text = """\
policy: x
rules:
  - id: every-time
    when: {overtalk: {longer_than: 5s, within: 1m}}
    then: [{tag: t}]
  - id: nested
    when: {any: [{not: {temperature: {above: 0.5}}}]}
    then: [{tag: t}]
  - id: fine
    when: {interruptions: {by: agent, more_than: 2, within: 1m}}
    cooldown: 1m
    then: [{tag: t}]
  - id: counted
    when: {temperature: {above: -0.5}, not: {temperature: {above: 0.2}}, consecutive: 2}
    then: [{tag: t}]
  - id: never
    when: {temperature: {above: 0.5}, not: {temperature: {above: 0.2}}}
    once: true
    then: [{tag: t}]
"""
    warnings = [str(w) for w in lint(load_policy_texts([(text, "x.yaml")]))]
    level = "fires at every utterance while they hold; add once: true or a cooldown"
    assert len(warnings) == 3, warnings
    assert warnings[0].startswith("x.yaml:4: rules[0].when: overtalk") and level in warnings[0]
    assert warnings[1].startswith("x.yaml:7: rules[1].when: overtalk") and level in warnings[1]
    assert warnings[2] == (
        "x.yaml:17: rules[4].when: contradictory conditions: no utterance can satisfy them, "
        "the rule never fires"
    )


def test_a_temperature_condition_needs_emotion_recognition() -> None:
    policy_set = load_policy_texts([(rule("{temperature: {above: 0.5}}"), "x.yaml")])
    [problem] = emotion_uses(policy_set)
    assert problem.startswith("x.yaml:4: rules[0].when.temperature: rule 'r' needs speech-emotion")


# --- replay -------------------------------------------------------------------------------


def test_replay_of_stored_utterances_decides_as_the_live_order_did(tmp_path: Path) -> None:
    """JSONL written in start order is replayed in the order the utterances end, as the live
    call fed them, so an interruption known at the longer turn's end fires at the same point."""
    from callsense.connectors.cli import app

    policy = tmp_path / "p.yaml"
    policy.write_text(rule("{interruptions: {by: agent, more_than: 0, within: 1m}}"), "utf-8")
    lines = [
        {"channel": 0, "speaker": "customer", "start": 0.0, "end": 10.0, "text": "well"},
        {"channel": 1, "speaker": "agent", "start": 3.0, "end": 5.0, "text": "sorry"},
        {"channel": 0, "speaker": "customer", "start": 11.0, "end": 12.0, "text": "so"},
    ]
    calls = tmp_path / "calls.jsonl"
    calls.write_text("".join(json.dumps({"call_id": "a", **x}) + "\n" for x in lines), "utf-8")
    out = tmp_path / "decisions.jsonl"
    result = CliRunner().invoke(
        app, ["replay", str(calls), "--policy", str(policy), "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    [decision] = [json.loads(x) for x in out.read_text("utf-8").splitlines()]
    live = ended((CUSTOMER, 0, 10), (AGENT, 3, 5), (CUSTOMER, 11, 12))
    assert fired(rule("{interruptions: {by: agent, more_than: 0, within: 1m}}"), live)[
        "python"
    ] == [(decision["rule"], decision["at"], [e["seq"] for e in decision["evidence"]])]
    assert (decision["at"], decision["evidence"][0]["seq"]) == (10.0, 1)


# --- both backends on random calls ------------------------------------------------------------

POLICY = """\
policy: prop
rules:
  - id: ot
    when: {overtalk: {longer_than: 2s, within: 20s}}
    cooldown: 5s
    then: [{tag: ot}]
  - id: intr
    when: {speaker: customer, interruptions: {by: agent, more_than: 1, within: 30s}}
    then: [{tag: intr}]
  - id: hot
    when: {temperature: {above: 0.3, for: 5s}, at_least: 2, within: 30s}
    then: [{tag: hot}]
  - id: cool
    when: {not: {temperature: {above: -0.2}}}
    cooldown: 10s
    then: [{tag: cool}]
"""
ENGINES = {b: PolicyEngine.from_text(POLICY, backend=b) for b in BACKENDS}

turn = st.tuples(
    st.sampled_from([CUSTOMER, CUSTOMER, AGENT]),
    st.floats(0.0, 60.0).map(lambda x: round(x, 1)),
    st.sampled_from([0.4, 1.0, 2.5, 6.0]),
    st.sampled_from(["ANGRY", "ANGRY", "NEUTRAL", "HAPPY", "SAD"]),
    st.sampled_from(["Speech", "Speech", "Speech", "Laughter", "BGM"]),
)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(turns=st.lists(turn, max_size=25))
def test_backends_agree_on_random_overlapping_calls(turns: list[tuple]) -> None:
    calls = ended(*[(w, a, a + d, {"emotion": e, "event": v}) for w, a, d, e, v in turns])
    runs = [[d.to_dict() for d in ENGINES[b].run("c", calls)] for b in BACKENDS]
    assert runs[0] == runs[1]


def test_the_example_policy_in_the_docs_loads_and_is_lint_clean() -> None:
    doc = (Path(__file__).resolve().parents[2] / "docs" / "policies.md").read_text("utf-8")
    section = doc.split("## Conversation dynamics conditions", 1)[1]
    example = section.split("```yaml\n", 1)[1].split("```", 1)[0]
    policy_set = load_policy_texts([(example, "policies.md")])
    assert lint(policy_set) == []
    assert len(policy_set.policies[0].rules) == 5
