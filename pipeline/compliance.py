"""Where speech-emotion recognition may run: the EU AI Act defaults, in one place.

Art. 5(1)(f) prohibits emotion recognition on people at the workplace (agents) except for
medical or safety reasons, so emotion is off on agent channels unless the config turns it
on *with a stated reason*. Mixed mono calls get emotion only when the config says the mono
speaker is the customer. ``emotion: false`` turns speech-emotion recognition off entirely.
"""

from __future__ import annotations

import logging
from dataclasses import replace

from pydantic import BaseModel, ConfigDict, Field, model_validator

from callsense.pipeline.model import Utterance

__all__ = [
    "ComplianceConfig",
    "apply_emotion_policy",
    "compliance_notes",
    "emotion_allowed",
    "log_startup",
]

log = logging.getLogger(__name__)


class ComplianceConfig(BaseModel):
    """``compliance:`` in YAML."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    emotion: bool = Field(True, description="speech-emotion recognition at all")
    agent_emotion: bool = Field(False, description="emotion on agent channels (needs a reason)")
    agent_emotion_reason: str | None = Field(
        None, description="why agent emotion is lawful here (medical or safety reasons)"
    )
    disclosure: bool = Field(
        True, description="the dialogue tells callers that emotion recognition is in use"
    )

    @model_validator(mode="after")
    def _reason_required(self) -> ComplianceConfig:
        if self.agent_emotion and not (self.agent_emotion_reason or "").strip():
            raise ValueError(
                "agent_emotion: true needs agent_emotion_reason (emotion recognition on "
                "workers is prohibited in the EU except for medical or safety reasons)"
            )
        return self


def emotion_allowed(speaker: str, cfg: ComplianceConfig) -> bool:
    """Whether this speaker's utterances may carry an emotion."""
    if not cfg.emotion:
        return False
    if speaker == "customer":
        return True
    if speaker == "agent":
        return cfg.agent_emotion
    return False  # unknown: could be an agent


def apply_emotion_policy(utt: Utterance, cfg: ComplianceConfig) -> Utterance:
    """The utterance with ``emotion`` (and its confidence) removed where not allowed.

    ``raw`` keeps what the model said; in every output the emotion field reads null.
    """
    if emotion_allowed(utt.speaker, cfg) or utt.emotion is None:
        return utt
    return replace(utt, emotion=None, confidence=replace(utt.confidence, emotion=None))


def compliance_notes(cfg: ComplianceConfig) -> list[str]:
    """What every summary says about where emotion recognition ran."""
    if not cfg.emotion:
        return ["speech-emotion recognition disabled"]
    if cfg.agent_emotion:
        return [f"emotion recognition ON for agents: {cfg.agent_emotion_reason}"]
    return ["emotion recognition on customers only (default)"]


def log_startup(cfg: ComplianceConfig) -> None:
    """Logged once when the pipeline is built: settings that differ from the defaults."""
    if not cfg.emotion:
        log.warning("compliance: speech-emotion recognition is switched off")
    if cfg.agent_emotion:
        log.warning("compliance: emotion recognition on agent channels is ON (reason given)")
