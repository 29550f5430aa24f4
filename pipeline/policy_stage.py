"""The orchestrator's rules stage: utterances in, policy decisions out, one session per call.

``pipeline`` depends on ``rules`` (never the reverse), so the translation from the
pipeline's ``Utterance`` to the rules' ``Observation`` lives here.
"""

from __future__ import annotations

from callsense.pipeline.model import Utterance
from callsense.rules.engine import PolicyEngine, PolicySession
from callsense.rules.model import Decision, Observation

__all__ = ["CallPolicy", "PolicyStage", "observation_of"]


def observation_of(utt: Utterance, seq: int, intent: str | None = None) -> Observation:
    """The rules' view of one utterance (``seq``: its index in the call)."""
    return Observation(
        call_id=utt.call_id,
        seq=seq,
        start=utt.start,
        end=utt.end,
        speaker=utt.speaker,
        channel=utt.channel,
        source=utt.source,
        lang=utt.lang,
        emotion=utt.emotion,
        event=utt.event,
        text=utt.text,
        lang_confidence=utt.confidence.lang,
        emotion_confidence=utt.confidence.emotion,
        event_confidence=utt.confidence.event,
        intent=intent,
    )


class CallPolicy:
    """One call's rules session, fed utterances in start-time order as they complete."""

    __slots__ = ("_seq", "_session")

    def __init__(self, session: PolicySession) -> None:
        self._session = session
        self._seq = 0

    def feed(self, utt: Utterance, intent: str | None = None) -> list[Decision]:
        obs = observation_of(utt, self._seq, intent)
        self._seq += 1
        return self._session.observe(obs)

    def close(self, call_end: float | None = None) -> list[Decision]:
        """End of call: decisions of ``last:`` windows (``call_end``: the audio duration)."""
        return self._session.close(call_end)


class PolicyStage:
    """Holds the compiled policies; opens a ``CallPolicy`` per call."""

    def __init__(self, engine: PolicyEngine) -> None:
        self.engine = engine

    def open(self, call_id: str) -> CallPolicy:
        return CallPolicy(self.engine.open(call_id))
