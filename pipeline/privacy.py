"""The privacy guard: what every utterance passes before anything else sees it.

No emotion where the compliance settings forbid it (agents, by default), then PII
redaction of text and raw output. Its own module, light to import, because the guard also
runs in ``pipeline.guard_process``'s child process.
"""

from __future__ import annotations

from typing import Protocol

from callsense.pipeline.compliance import ComplianceConfig, apply_emotion_policy
from callsense.pipeline.model import Utterance
from callsense.pipeline.redact import RedactionConfig, Redactor

__all__ = ["GuardSettings", "PrivacyGuard"]


class GuardSettings(Protocol):
    """What the guard reads of a config (a ``CallsenseConfig`` has both)."""

    @property
    def compliance(self) -> ComplianceConfig: ...

    @property
    def redaction(self) -> RedactionConfig: ...


class PrivacyGuard:
    """Emotion policy, then redaction. Applying it twice changes nothing, so a cached or
    stored call may pass again."""

    def __init__(self, cfg: GuardSettings) -> None:
        self.compliance = cfg.compliance
        # a missing encryption key for the sealed original fails here, at start-up
        self.redactor = Redactor(cfg.redaction)

    @property
    def redaction(self) -> RedactionConfig:
        return self.redactor.cfg

    def __call__(self, utterance: Utterance) -> Utterance:
        return self.redactor.redact_utterance(apply_emotion_policy(utterance, self.compliance))
