"""A gap the platform marks (hold, discarded audio, reconnect) and the policy's ``on_pause``."""

from __future__ import annotations

import pytest

from callsense.rules.engine import BACKENDS, PolicyEngine
from callsense.rules.model import Observation

POLICY = """\
policy: angry
{on_pause}rules:
  - id: angry-streak
    when: {{speaker: customer, emotion: ANGRY, consecutive: 3}}
    then: [{{escalate: {{priority: high}}}}]
"""


def _angry(seq: int, start: float) -> Observation:
    return Observation("c", seq, start, start + 1.5, emotion="ANGRY", event="Speech")


def _decisions(on_pause: str, pause: tuple[float, float] | None, backend: str) -> list[str]:
    engine = PolicyEngine.from_text(POLICY.format(on_pause=on_pause), backend=backend)
    session = engine.open("c")
    if pause is not None:
        session.pause(*pause)  # known before the utterances: placement is by time
    out = [session.observe(obs) for obs in (_angry(0, 0.0), _angry(1, 2.0), _angry(2, 14.0))]
    return [d.rule for ds in out for d in ds]


@pytest.mark.parametrize("backend", sorted(BACKENDS))
def test_a_pause_breaks_the_streak_by_default(backend: str) -> None:
    assert _decisions("", (5.0, 13.0), backend) == []
    assert _decisions("on_pause: reset\n", (5.0, 13.0), backend) == []


@pytest.mark.parametrize("backend", sorted(BACKENDS))
def test_on_pause_continue_counts_across_the_pause(backend: str) -> None:
    assert _decisions("on_pause: continue\n", (5.0, 13.0), backend) == ["angry-streak"]


def test_a_pause_outside_the_streak_changes_nothing() -> None:
    assert _decisions("", (20.0, 30.0), "python") == ["angry-streak"]
    assert _decisions("", None, "python") == ["angry-streak"]


def test_a_pause_marked_after_the_utterances_before_it_still_breaks_the_streak() -> None:
    """Live: recognition lags, so the gap may reach the rules between utterances."""
    session = PolicyEngine.from_text(POLICY.format(on_pause="")).open("c")
    assert session.observe(_angry(0, 0.0)) == []
    assert session.observe(_angry(1, 2.0)) == []
    session.pause(5.0, 13.0)
    assert session.observe(_angry(2, 14.0)) == []
    assert session.observe(_angry(3, 16.0)) == []
    assert [d.rule for d in session.observe(_angry(4, 18.0))] == ["angry-streak"]
