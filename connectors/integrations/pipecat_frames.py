"""What callsense adds to a Pipecat pipeline: typed frames and the reactions' configuration.

The frames are ``SystemFrame``s: Pipecat processes them ahead of data frames and never
drops them on an interruption, so a caller who barges in cannot cancel an escalation. They
carry callsense's own frozen records (``Utterance``, ``Decision``, ``CallResult``); the
properties are the fields a bot usually reads.
"""

from __future__ import annotations

import string
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pipecat.frames.frames import SystemFrame
from pipecat.transcriptions.language import Language
from pydantic import BaseModel, ConfigDict, Field, field_validator

from callsense.connectors.integrations.common import ReactionConfig
from callsense.pipeline.model import TagConfidence, Utterance
from callsense.pipeline.recognizer import LANGUAGES
from callsense.pipeline.summary import CallResult
from callsense.rules.model import Decision, Evidence

__all__ = [
    "CallsenseDecisionFrame",
    "CallsenseEndFrame",
    "CallsenseUtteranceFrame",
    "ContextReaction",
    "HandoffReaction",
    "PipecatConfig",
    "pipecat_language",
]


def pipecat_language(lang: str | None) -> Language | None:
    """SenseVoice's detected language as Pipecat's (``nospeech`` and unknown: None)."""
    try:
        return Language(lang) if lang else None
    except ValueError:
        return None


@dataclass
class CallsenseUtteranceFrame(SystemFrame):
    """An utterance as callsense heard it, after the privacy guard; ``closed_at``: the call
    position (seconds) when it was closed."""

    utterance: Utterance
    closed_at: float

    @property
    def text(self) -> str:
        return self.utterance.text

    @property
    def language(self) -> Language | None:
        return pipecat_language(self.utterance.lang)

    @property
    def emotion(self) -> str | None:
        return self.utterance.emotion

    @property
    def event(self) -> str | None:
        return self.utterance.event

    @property
    def confidence(self) -> TagConfidence:
        return self.utterance.confidence

    @property
    def start(self) -> float:
        return self.utterance.start

    @property
    def end(self) -> float:
        return self.utterance.end

    def __str__(self) -> str:  # Pipecat logs frames: tags and times, never the text
        u = self.utterance
        return f"{self.name}({u.speaker} {u.start:.2f}-{u.end:.2f} {u.lang} {u.emotion} {u.event})"


@dataclass
class CallsenseDecisionFrame(SystemFrame):
    """A policy decision; ``closed_at`` is that of the utterance that fired it (None: the
    call's end)."""

    decision: Decision
    closed_at: float | None

    @property
    def rule(self) -> str:
        return self.decision.rule

    @property
    def action(self) -> str:
        return self.decision.action

    @property
    def params(self) -> dict[str, Any]:
        return self.decision.params

    @property
    def evidence(self) -> tuple[Evidence, ...]:
        return self.decision.evidence

    def __str__(self) -> str:
        return f"{self.name}({self.rule}: {self.action} at {self.decision.at:.2f})"


@dataclass
class CallsenseEndFrame(SystemFrame):
    """The call's result (transcript, decisions, summary with its audit block), pushed
    before the pipeline's ``EndFrame`` goes on."""

    result: CallResult

    def __str__(self) -> str:
        return f"{self.name}({len(self.result.decisions)} decisions)"


_FIELDS = frozenset({"rule", "action", "reason", "priority", "emotion", "policy"})


class ContextReaction(ReactionConfig):
    """Tell the bot: append ``message`` to the LLM context (``LLMMessagesAppendFrame``).
    The message may name ``{rule}``, ``{action}``, ``{reason}``, ``{priority}``,
    ``{emotion}`` and ``{policy}``: the decision's, never anything the caller said."""

    kind: Literal["context"] = "context"
    role: Literal["system", "developer", "user"] = "system"
    message: str = (
        "callsense: the caller has been {emotion} for a while ({reason}). Acknowledge it, "
        "keep answers short, and offer a human agent."
    )
    run_llm: bool = Field(False, description="the bot answers at once (False: next turn)")

    @field_validator("message")
    @classmethod
    def _known_fields(cls, value: str) -> str:
        names = {f for _, f, _, _ in string.Formatter().parse(value) if f is not None}
        unknown = sorted(names - _FIELDS)
        if unknown:
            raise ValueError(
                f"unknown field {{{unknown[0]}}}; the message may use "
                + ", ".join(f"{{{f}}}" for f in sorted(_FIELDS))
            )
        return value

    def render(self, decision: Decision) -> str:
        emotions = [e.emotion for e in decision.evidence if e.emotion]
        values = {
            "rule": decision.rule,
            "action": decision.action,
            "reason": str(decision.params.get("reason", decision.rule)),
            "priority": str(decision.params.get("priority", "")),
            "emotion": (emotions[-1] if emotions else "upset").lower(),
            "policy": decision.policy,
        }
        return self.message.format_map(values)


class HandoffReaction(ReactionConfig):
    """Hand the caller to a human: end the bot's turn (an interruption both ways), say
    ``say`` if given, and end the pipeline if ``end``; the decision itself goes to the
    outlet (the outbox, where the routing target acts on it), as every decision does."""

    kind: Literal["handoff"] = "handoff"
    interrupt: bool = True
    say: str | None = None
    end: bool = False


Reaction = Annotated[ContextReaction | HandoffReaction, Field(discriminator="kind")]


class PipecatConfig(BaseModel):
    """How callsense sits in a Pipecat pipeline (YAML or code; nothing hard-coded)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    speaker: Literal["customer", "agent"] = Field(
        "customer",
        description="whose voice the input audio is; emotion is kept for customers only "
        "unless compliance.agent_emotion allows it (the session's gate decides)",
    )
    user_id: str | None = Field(
        None, description="only UserAudioRawFrames of this user (None: all input audio)"
    )
    language: str | None = Field(None, description="recognizer language (None: the config's)")
    reactions: tuple[Reaction, ...] = ()

    @field_validator("language")
    @classmethod
    def _language(cls, value: str | None) -> str | None:
        if value is not None and value not in LANGUAGES:
            raise ValueError(f"must be one of {', '.join(LANGUAGES)}")
        return value
