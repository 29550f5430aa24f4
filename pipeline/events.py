"""What a call tells its listeners, in order: typed events, never dicts.

Each utterance as VAD closes it and the recognizer reads it, each decision as it fires, each
reply (with its audio when TTS could speak it), each stage error (the call goes on), and last
the call's end with everything it produced.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from callsense.pipeline.model import Utterance
from callsense.pipeline.stages import SpokenReply, StageError
from callsense.pipeline.summary import CallResult
from callsense.rules.model import Decision

__all__ = [
    "CallEvent",
    "DecisionEvent",
    "EndEvent",
    "ErrorEvent",
    "ReplyEvent",
    "UtteranceEvent",
]


@dataclass(frozen=True, slots=True)
class UtteranceEvent:
    """An utterance, recognized; ``closed_at`` is the stream position when VAD closed it."""

    kind: ClassVar[str] = "utterance"
    utterance: Utterance
    closed_at: float


@dataclass(frozen=True, slots=True)
class DecisionEvent:
    """A decision; ``closed_at`` is that of the utterance that fired it (None: call end)."""

    kind: ClassVar[str] = "decision"
    decision: Decision
    closed_at: float | None


@dataclass(frozen=True, slots=True)
class ReplyEvent:
    kind: ClassVar[str] = "reply"
    reply: SpokenReply


@dataclass(frozen=True, slots=True)
class ErrorEvent:
    """Something failed for one utterance or step of this call; the call goes on."""

    kind: ClassVar[str] = "error"
    error: StageError


@dataclass(frozen=True, slots=True)
class EndEvent:
    """The last event of a call: everything it produced, summarized."""

    kind: ClassVar[str] = "end"
    result: CallResult


CallEvent = UtteranceEvent | DecisionEvent | ReplyEvent | ErrorEvent | EndEvent
