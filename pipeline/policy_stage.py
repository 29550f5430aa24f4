"""The call session's rules stage: utterances in, policy decisions out, one session per call.

``pipeline`` depends on ``rules`` (never the reverse); the rules read the pipeline's
``Utterance`` through ``Observation.of``, the one translation for every way in.
"""

from __future__ import annotations

from callsense.pipeline.model import Utterance
from callsense.rules.engine import PolicyEngine, PolicySession
from callsense.rules.model import Decision, Observation

__all__ = ["CallPolicy", "PolicyStage"]


class CallPolicy:
    """One call's rules session, fed utterances in the order they complete."""

    __slots__ = ("_seq", "_session")

    def __init__(self, session: PolicySession) -> None:
        self._session = session
        self._seq = 0

    def feed(self, utt: Utterance, intent: str | None = None) -> list[Decision]:
        obs = Observation.of(utt, self._seq, intent)
        self._seq += 1
        return self._session.observe(obs)

    def pause(self, start: float, end: float) -> None:
        """A gap the platform marked (see ``Policy.on_pause``)."""
        self._session.pause(start, end)

    def close(self, call_end: float | None = None) -> list[Decision]:
        """End of call: decisions of ``last:`` windows (``call_end``: the audio duration)."""
        return self._session.close(call_end)


class PolicyStage:
    """Holds the compiled policies; opens a ``CallPolicy`` per call."""

    def __init__(self, engine: PolicyEngine) -> None:
        self.engine = engine

    def open(self, call_id: str) -> CallPolicy:
        return CallPolicy(self.engine.open(call_id))
