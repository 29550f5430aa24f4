"""Random utterance sequences: the engine agrees with a plain reference of the counters."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from callsense.rules.engine import BACKENDS, PolicyEngine
from callsense.rules.model import Observation

POLICY = """\
policy: prop
min_confidence: {emotion: 0.5}
skip: [{event: BGM}]
rules:
  - id: streak
    when: {speaker: customer, emotion: ANGRY, consecutive: 3}
    then: [{tag: streak}]
  - id: streak-break
    when: {speaker: customer, emotion: ANGRY, consecutive: 2}
    on_unknown: break
    then: [{tag: streak-break}]
  - id: window
    when: {speaker: customer, emotion: ANGRY, at_least: 2, of_last: 4}
    then: [{tag: window}]
  - id: laugh
    when: {speaker: customer, event: Laughter}
    then: [{mark: satisfaction}]
"""

ENGINES = {b: PolicyEngine.from_text(POLICY, backend=b) for b in BACKENDS}

record = st.fixed_dictionaries(
    {
        "speaker": st.sampled_from(["customer", "customer", "agent"]),
        "source": st.sampled_from(["speech", "speech", "speech", "sound"]),
        "emotion": st.sampled_from(["ANGRY", "ANGRY", "NEUTRAL", "HAPPY", "EMO_UNKNOWN"]),
        "event": st.sampled_from(["Speech", "Speech", "BGM", "Laughter", "Cough"]),
        "conf": st.sampled_from([None, None, 0.3, 0.9]),
        "dur": st.sampled_from([0.5, 1.0, 2.5]),
    }
)


def _observations(records: list[dict]) -> list[Observation]:
    out, t = [], 0.0
    for seq, r in enumerate(records):
        out.append(
            Observation(
                "c",
                seq,
                t,
                t + r["dur"],
                speaker=r["speaker"],
                source=r["source"],
                emotion=r["emotion"],
                event=r["event"],
                emotion_confidence=r["conf"],
            )
        )
        t += r["dur"]
    return out


def reference(obs: list[Observation]) -> list[tuple[str, float, list[int]]]:
    """The counters written the plainest way, straight from docs/policies.md."""
    fired: list[tuple[str, float, list[int]]] = []
    streak: list[int] = []
    streak_b: list[int] = []
    window: list[tuple[bool, int]] = []
    for o in obs:
        if o.event == "BGM" or o.speaker != "customer":
            continue
        unknown = (
            o.source == "sound"
            or o.emotion == "EMO_UNKNOWN"
            or (o.emotion_confidence is not None and o.emotion_confidence < 0.5)
        )
        angry = not unknown and o.emotion == "ANGRY"
        if not unknown:
            if angry:
                streak.append(o.seq)
                if len(streak) == 3:
                    fired.append(("streak", o.end, streak))
                    streak = []
            else:
                streak = []
        if angry:
            streak_b.append(o.seq)
            if len(streak_b) == 2:
                fired.append(("streak-break", o.end, streak_b))
                streak_b = []
        else:
            streak_b = []
        if not unknown:
            window = [*window, (angry, o.seq)][-4:]
            hits = [s for hit, s in window if hit]
            if angry and len(hits) >= 2:
                fired.append(("window", o.end, hits))
                window = []
        if o.event == "Laughter":
            fired.append(("laugh", o.end, [o.seq]))
    return fired


@pytest.mark.parametrize("backend", BACKENDS)
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(records=st.lists(record, max_size=40))
def test_engine_agrees_with_reference(backend: str, records: list[dict]) -> None:
    obs = _observations(records)
    got = [(d.rule, d.at, [e.seq for e in d.evidence]) for d in ENGINES[backend].run("c", obs)]
    assert got == reference(obs)
