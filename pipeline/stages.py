"""The stages a call's utterances go through, after recognition and the privacy guard:

    NLU        intent of customer speech, so policies can use `intent:`
    rules      the call's policy session: decisions
    dialogue   replies from state + intent + emotion + decisions
    TTS        reply audio

Each ``Stage`` is loaded once and opens a ``CallStage`` per call; ``pipeline.session``
runs them in this order for every utterance. A stage error inside a call becomes an error
record on the turn; it never ends the call.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from dataclasses import dataclass, replace
from typing import Any

from callsense.pipeline.dialogue import DialogueManager, DialogueSession, Reply
from callsense.pipeline.model import Gap, Utterance
from callsense.pipeline.nlu import IntentClassifier
from callsense.pipeline.nlu.base import Intent
from callsense.pipeline.policy_stage import CallPolicy, PolicyStage
from callsense.pipeline.tts import FallbackTts, OutputFormat
from callsense.rules.model import Decision

__all__ = [
    "CallStage",
    "DialogueStage",
    "NluStage",
    "RulesStage",
    "SpokenReply",
    "Stage",
    "StageError",
    "TtsStage",
    "Turn",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class SpokenReply:
    """A dialogue reply and, when TTS could speak it, its audio (16 kHz WAV bytes)."""

    reply: Reply
    audio: bytes | None = None
    engine: str | None = None
    duration_s: float | None = None

    def record(self) -> dict[str, Any]:
        """The reply as the files, the calls store and the live stream carry it (the audio
        itself goes beside it: a file, or base64 in the live message)."""
        r = self.reply
        return {"at": r.at, "reason": r.reason, "template": r.template, "lang": r.lang,
                "text": r.text, "engine": self.engine, "duration_s": self.duration_s}  # fmt: skip


@dataclass(frozen=True, slots=True)
class StageError:
    """A stage failed on one utterance; the call went on. Never carries transcript text."""

    stage: str
    kind: str
    message: str
    at: float | None = None


@dataclass(frozen=True, slots=True)
class Turn:
    """What the stages made of one utterance (or of the call's start or end)."""

    utterance: Utterance | None
    intent: Intent | None = None
    decisions: tuple[Decision, ...] = ()
    replies: tuple[SpokenReply, ...] = ()
    errors: tuple[StageError, ...] = ()
    at: float = 0.0


class CallStage(ABC):
    """One stage's state for one call: takes a turn, returns it with its own part added."""

    name: str = "stage"

    @abstractmethod
    def process(self, turn: Turn) -> Turn: ...

    def start(self, turn: Turn) -> Turn:
        """Called once before the first utterance (the dialogue greets here)."""
        return turn

    def close(self, turn: Turn, call_end: float | None) -> Turn:
        """Called once after the last utterance (``last:`` policy windows decide here)."""
        return turn

    def pause(self, gap: Gap) -> None:
        """The platform marked a gap in the call's audio (only the rules care)."""
        return None


class Stage(ABC):
    """Shared, loaded-once part of a stage; ``open`` gives its per-call state."""

    @abstractmethod
    def open(self, call_id: str) -> CallStage: ...


# --- the stages --------------------------------------------------------------------------


class NluStage(Stage):
    def __init__(self, classifier: IntentClassifier) -> None:
        self.classifier = classifier

    def open(self, call_id: str) -> CallStage:
        return _NluCall(self.classifier)


class _NluCall(CallStage):
    name = "nlu"

    def __init__(self, classifier: IntentClassifier) -> None:
        self.classifier = classifier

    def process(self, turn: Turn) -> Turn:
        if turn.utterance is None:
            return turn
        result = self.classifier.classify(turn.utterance)
        errors = tuple(
            StageError("nlu", f"{e.hook}:{e.kind}", e.message, turn.at) for e in result.errors
        )
        return replace(turn, intent=result.intent, errors=turn.errors + errors)


class RulesStage(Stage):
    def __init__(self, policies: PolicyStage) -> None:
        self.policies = policies

    def open(self, call_id: str) -> CallStage:
        return _RulesCall(self.policies.open(call_id))


class _RulesCall(CallStage):
    name = "rules"

    def __init__(self, call: CallPolicy) -> None:
        self.call = call

    def process(self, turn: Turn) -> Turn:
        if turn.utterance is None:
            return turn
        intent = turn.intent.name if turn.intent is not None else None
        decisions = self.call.feed(turn.utterance, intent=intent)
        return replace(turn, decisions=turn.decisions + tuple(decisions))

    def close(self, turn: Turn, call_end: float | None) -> Turn:
        return replace(turn, decisions=turn.decisions + tuple(self.call.close(call_end)))

    def pause(self, gap: Gap) -> None:
        self.call.pause(gap.start, gap.end)


class DialogueStage(Stage):
    def __init__(self, manager: DialogueManager, *, disclosure: bool = True) -> None:
        self.manager = manager
        self.disclosure = disclosure

    def open(self, call_id: str) -> CallStage:
        return _DialogueCall(self.manager.open(call_id), self.disclosure)


class _DialogueCall(CallStage):
    name = "dialogue"

    def __init__(self, session: DialogueSession, disclosure: bool) -> None:
        self.session = session
        self.disclosure = disclosure

    def start(self, turn: Turn) -> Turn:
        replies = self.session.start()
        if not self.disclosure:
            replies = [r for r in replies if r.reason != "disclosure"]
        return replace(turn, replies=turn.replies + tuple(SpokenReply(r) for r in replies))

    def process(self, turn: Turn) -> Turn:
        if turn.utterance is None:
            return turn
        replies = self.session.on_utterance(turn.utterance, turn.intent, turn.decisions)
        return replace(turn, replies=turn.replies + tuple(SpokenReply(r) for r in replies))


class TtsStage(Stage):
    def __init__(self, tts: FallbackTts) -> None:
        self.tts = tts

    def open(self, call_id: str) -> CallStage:
        return _TtsCall(self.tts)


class _TtsCall(CallStage):
    name = "tts"

    def __init__(self, tts: FallbackTts) -> None:
        self.tts = tts

    def _speak(self, turn: Turn) -> Turn:
        spoken: list[SpokenReply] = []
        errors: list[StageError] = []
        for item in turn.replies:
            if item.audio is not None:
                spoken.append(item)
                continue
            try:
                result = self.tts.speak(item.reply.text, item.reply.lang, OutputFormat.WAV16K)
            except Exception as exc:
                errors.append(StageError("tts", type(exc).__name__, str(exc), item.reply.at))
                spoken.append(item)
            else:
                spoken.append(
                    replace(
                        item, audio=result.data, engine=result.engine, duration_s=result.duration_s
                    )
                )
        return replace(turn, replies=tuple(spoken), errors=turn.errors + tuple(errors))

    def start(self, turn: Turn) -> Turn:
        return self._speak(turn)

    def process(self, turn: Turn) -> Turn:
        return self._speak(turn)

    def close(self, turn: Turn, call_end: float | None) -> Turn:
        return self._speak(turn)
