"""NLU intent hooks: keyword/regex, Rasa over HTTP, optional embeddings, in a safe chain.

``IntentClassifier.load("configs/intents.yaml").classify(utterance) -> NluResult``.
"""

from __future__ import annotations

from callsense.pipeline.nlu.base import (
    ErrorKind,
    HookCapabilities,
    HookError,
    HookFailure,
    Intent,
    IntentHook,
)
from callsense.pipeline.nlu.chain import IntentClassifier, NluResult, load_intents_config
from callsense.pipeline.nlu.config import IntentsConfig
from callsense.pipeline.nlu.registry import HOOKS

__all__ = [
    "HOOKS",
    "ErrorKind",
    "HookCapabilities",
    "HookError",
    "HookFailure",
    "Intent",
    "IntentClassifier",
    "IntentHook",
    "IntentsConfig",
    "NluResult",
    "load_intents_config",
]
