"""The one wire shape of an utterance: a line of ``callsense transcribe`` JSONL.

The JSONL reader, the API (posted transcripts, a call's utterances) and the YAML policy tests
all speak this record, so its fields and checks are written once; it sits in the core
because ``rules`` may import nothing else.

The writer (``pipeline.records``) always produces exactly ``RECORD_KEYS``, in that order:
times in seconds rounded to the millisecond, confidences to 4 dp. Reading is strict about the
types of those keys (no ``"0"`` for a channel, no ``true`` for a time) but ignores keys it
does not know, because transcripts from other tools carry extras (funasr's ``key``,
``timestamp``, ``words``). ``raw`` or ``text`` must be there; the reader fills the rest
from ``raw``.

Sizes are bounded here, where a transcript from outside first becomes data: every stage
after this (keyword and regex matching, redaction, storage) costs time per character, and a
single 20 MB utterance once held one keyword search, and with it the whole service, for
45 s. ``MAX_TEXT_CHARS`` is about 25 minutes of uninterrupted speech in one utterance;
``MAX_TRANSCRIPT_CHARS`` is some 40 hours of talk in one call.
"""

from __future__ import annotations

from typing import Annotated, Protocol

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from callsense.core.vocab import EMOTIONS, EVENTS, LANGUAGES, Source, Speaker, suggest

__all__ = [
    "MAX_ORIGINAL_CHARS",
    "MAX_RAW_CHARS",
    "MAX_RECORD_BYTES",
    "MAX_TEXT_CHARS",
    "MAX_TRANSCRIPT_CHARS",
    "RECORD_KEYS",
    "ConfidenceRecord",
    "Probability",
    "Seconds",
    "UtteranceFields",
    "UtteranceRecord",
]

RECORD_KEYS: tuple[str, ...] = (
    "call_id",
    "channel",
    "speaker",
    "start",
    "end",
    "source",
    "lang",
    "emotion",
    "event",
    "text",
    "raw",
    "confidence",
)

MAX_TEXT_CHARS = 20_000
"""Longest ``text`` of one utterance."""
MAX_RAW_CHARS = MAX_TEXT_CHARS + 2_000
"""Longest ``raw``: the text plus its SenseVoice tags (several groups when merged)."""
MAX_ORIGINAL_CHARS = 8 * MAX_RAW_CHARS
"""Longest sealed ``original``: a Fernet token of text and raw as UTF-8 JSON."""
MAX_RECORD_BYTES = 1024 * 1024
"""Longest JSONL line a reader takes in (far above any record within the limits above)."""
MAX_TRANSCRIPT_CHARS = 2_000_000
"""Most text (the sum of ``text`` over its utterances) one call may carry."""

_LIMITS = {"text": MAX_TEXT_CHARS, "raw": MAX_RAW_CHARS, "original": MAX_ORIGINAL_CHARS}
_LIMIT_NAMES = {"text": "MAX_TEXT_CHARS", "raw": "MAX_RAW_CHARS", "original": "MAX_ORIGINAL_CHARS"}

Probability = Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False)]
Seconds = Annotated[float, Field(ge=0.0, allow_inf_nan=False)]


class ConfidenceRecord(BaseModel):
    """Probability of each chosen tag (None: not measured)."""

    model_config = ConfigDict(
        strict=True, extra="forbid", frozen=True, json_schema_serialization_defaults_required=True
    )

    lang: Probability | None = None
    emotion: Probability | None = None
    event: Probability | None = None


def _check_tag(value: str | None, known: tuple[str, ...], what: str) -> str | None:
    if value is None or value in known:
        return value
    hint = suggest(value, known)
    suffix = f" (did you mean {hint!r}?)" if hint else f" (one of {', '.join(known)})"
    raise ValueError(f"{value!r} is not a SenseVoice {what}{suffix}")


class UtteranceRecord(BaseModel):
    """One utterance as one JSONL line; unknown keys are ignored (see the module doc)."""

    # the API answers with every key, so its response schema lists them all as present
    model_config = ConfigDict(
        strict=True, extra="ignore", frozen=True, json_schema_serialization_defaults_required=True
    )

    call_id: str = Field(min_length=1)
    channel: int = Field(ge=0)
    speaker: Speaker
    start: Seconds
    end: Seconds
    source: Source = "speech"
    lang: str | None = None
    emotion: str | None = None
    event: str | None = None
    text: str | None = None
    raw: str | None = None
    confidence: ConfidenceRecord = ConfidenceRecord()
    # redaction mode redacted_and_original: the sealed (encrypted) original. Read here, but
    # never dumped from the model: only the JSONL writer puts it out, the API does not.
    original: str | None = Field(default=None, exclude=True)

    @field_validator("text", "raw", "original")
    @classmethod
    def _bounded(cls, value: str | None, info: ValidationInfo) -> str | None:
        field = str(info.field_name)
        limit = _LIMITS[field]
        if value is not None and len(value) > limit:
            raise ValueError(
                f"{len(value)} characters, more than one utterance may hold "
                f"({_LIMIT_NAMES[field]} = {limit}); split it into shorter utterances"
            )
        return value

    @field_validator("lang")
    @classmethod
    def _lang(cls, value: str | None) -> str | None:
        return _check_tag(value, LANGUAGES, "language")

    @field_validator("emotion")
    @classmethod
    def _emotion(cls, value: str | None) -> str | None:
        return _check_tag(value, EMOTIONS, "emotion")

    @field_validator("event")
    @classmethod
    def _event(cls, value: str | None) -> str | None:
        return _check_tag(value, EVENTS, "event")

    @model_validator(mode="after")
    def _consistent(self) -> UtteranceRecord:
        if self.end < self.start:
            raise ValueError(f"end ({self.end}) is before start ({self.start})")
        if self.raw is None and self.text is None:
            raise ValueError("needs 'raw' (the SenseVoice string) or at least 'text'")
        return self


class _Confidences(Protocol):
    @property
    def lang(self) -> float | None: ...
    @property
    def emotion(self) -> float | None: ...
    @property
    def event(self) -> float | None: ...


class UtteranceFields(Protocol):
    """What the rules read of an utterance: the record above and the pipeline's
    ``Utterance`` both have it, so one function turns either into an ``Observation``."""

    @property
    def call_id(self) -> str: ...
    @property
    def channel(self) -> int: ...
    @property
    def speaker(self) -> str: ...
    @property
    def start(self) -> float: ...
    @property
    def end(self) -> float: ...
    @property
    def source(self) -> str: ...
    @property
    def lang(self) -> str | None: ...
    @property
    def emotion(self) -> str | None: ...
    @property
    def event(self) -> str | None: ...
    @property
    def text(self) -> str | None: ...
    @property
    def confidence(self) -> _Confidences: ...
