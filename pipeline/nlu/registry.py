"""YAML ``type:`` names to hook classes, written out: no import magic, no plugins by path.

Each builder takes the validated hook config plus the whole intents config (hooks that
learn from examples need them) and returns a ready hook.
"""

from __future__ import annotations

from collections.abc import Callable

from callsense.pipeline.nlu.base import IntentHook
from callsense.pipeline.nlu.config import (
    EmbeddingHookConfig,
    IntentsConfig,
    KeywordHookConfig,
    RasaHookConfig,
)

__all__ = ["HOOKS", "build_hook"]


def _keywords(cfg: KeywordHookConfig, full: IntentsConfig) -> IntentHook:
    from callsense.pipeline.nlu.keywords import KeywordHook

    return KeywordHook(cfg.name, full.intents, confidence=cfg.confidence, languages=cfg.languages)


def _rasa(cfg: RasaHookConfig, full: IntentsConfig) -> IntentHook:
    from callsense.pipeline.nlu.rasa import RasaHook

    return RasaHook(
        cfg.name,
        str(cfg.url),
        timeout_s=cfg.timeout_s,
        retries=cfg.retries,
        backoff_s=cfg.backoff_s,
        token=RasaHook.token_from_env(cfg.token_env),
        intent_map=cfg.intent_map,
        ignore=cfg.ignore,
        drop_unmapped=cfg.drop_unmapped,
        languages=cfg.languages,
    )


def _embedding(cfg: EmbeddingHookConfig, full: IntentsConfig) -> IntentHook:
    from callsense.pipeline.nlu.embedding import EmbeddingHook

    examples = {
        name: [
            t
            for lang in cfg.example_languages
            for t in (*spec.examples.get(lang, ()), *spec.keywords.get(lang, ()))
        ]
        for name, spec in full.intents.items()
    }
    return EmbeddingHook(
        cfg.name,
        {n: [t.rstrip("*") for t in ts] for n, ts in examples.items()},
        model=cfg.model,
        min_similarity=cfg.min_similarity,
        languages=cfg.languages,
    )


HOOKS: dict[str, Callable[..., IntentHook]] = {
    "keywords": _keywords,
    "rasa": _rasa,
    "embedding": _embedding,
}


def build_hook(
    cfg: KeywordHookConfig | RasaHookConfig | EmbeddingHookConfig, full: IntentsConfig
) -> IntentHook:
    return HOOKS[cfg.type](cfg, full)
