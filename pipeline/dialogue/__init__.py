"""Dialogue manager: YAML flows from utterances, intents and decisions to reply texts.

``DialogueManager.load("configs/dialogue.yaml").open(call_id, lang)`` gives a session;
``session.start()`` and ``session.on_utterance(utt, intent, decisions)`` return ``Reply``s.
"""

from __future__ import annotations

from callsense.pipeline.dialogue.config import DialogueConfig
from callsense.pipeline.dialogue.manager import (
    DecisionLike,
    DialogueManager,
    DialogueSession,
    Reply,
)

__all__ = ["DecisionLike", "DialogueConfig", "DialogueManager", "DialogueSession", "Reply"]
