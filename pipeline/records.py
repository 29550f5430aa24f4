"""The JSONL edge: one utterance record per line, and one error record per failed file.

The record's shape and checks are the core's (``core.wire``: keys, types, tags); here is the
pipeline's side of it: an ``Utterance`` out as a record, a record in as an ``Utterance``.

``raw`` is enough: a tag field or ``text`` that is absent from a record is filled by parsing
``raw``. A field that is present wins over ``raw``, since the writer may have applied the
confidence threshold (``ANGRY`` at 0.3 is written as ``EMO_UNKNOWN`` while ``raw`` keeps what
the model said). A ``raw`` that holds several SenseVoice groups (funasr ``merge_vad`` output)
is still ONE utterance: the record's times say it is one span; its tags come from the first
group that has each (``richtext.parse_one``) and the texts are joined with a space. A record
without ``raw`` but with ``text`` gets a ``raw`` rebuilt from its fields.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from callsense.core import richtext
from callsense.core.errors import InputError
from callsense.core.wire import MAX_TRANSCRIPT_CHARS, RECORD_KEYS, UtteranceRecord
from callsense.pipeline.model import TagConfidence, Utterance

__all__ = [
    "MAX_TRANSCRIPT_CHARS",
    "RECORD_KEYS",
    "ErrorDetail",
    "ErrorRecord",
    "UtteranceRecord",
    "check_transcript_size",
    "error_record",
    "format_validation_error",
    "record_from_utterance",
    "utterance_from_record",
]


class ErrorDetail(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    type: str
    message: str


class ErrorRecord(BaseModel):
    """A batch output line for a file that failed: the batch went on without it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    call_id: str
    file: str
    error: ErrorDetail


def error_record(call_id: str, file: str, exc: BaseException) -> dict[str, Any]:
    """The JSON-ready error line for ``exc``; the message must not carry transcript text."""
    detail = ErrorDetail(type=type(exc).__name__, message=str(exc) or type(exc).__name__)
    return ErrorRecord(call_id=call_id, file=file, error=detail).model_dump()


def _round(value: float | None, digits: int) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    return round(value, digits)


def record_from_utterance(u: Utterance) -> dict[str, Any]:
    """The JSON-ready record of ``u``: ``RECORD_KEYS``, times to the ms, confidences 4 dp."""
    c = u.confidence
    record: dict[str, Any] = {
        "call_id": u.call_id,
        "channel": u.channel,
        "speaker": u.speaker,
        "start": round(u.start, 3),
        "end": round(u.end, 3),
        "source": u.source,
        "lang": u.lang,
        "emotion": u.emotion,
        "event": u.event,
        "text": u.text,
        "raw": u.raw,
        "confidence": {
            "lang": _round(c.lang, 4),
            "emotion": _round(c.emotion, 4),
            "event": _round(c.event, 4),
        },
    }
    if u.original is not None:  # redaction mode redacted_and_original: sealed original
        record["original"] = u.original
    return record


def format_validation_error(
    exc: ValidationError, *, file: str | None = None, line: int | None = None
) -> str:
    """``file:line: field: message`` for each problem, joined with ``; ``."""
    where = file or "<input>"
    if line is not None:
        where = f"{where}:{line}"
    problems = []
    for err in exc.errors(include_url=False, include_input=False):
        field = ".".join(str(p) for p in err["loc"])
        message = err["msg"].removeprefix("Value error, ")
        problems.append(f"{field}: {message}" if field else message)
    return f"{where}: " + "; ".join(problems)


def utterance_from_record(
    rec: UtteranceRecord | Mapping[str, Any], *, file: str | None = None, line: int | None = None
) -> Utterance:
    """Validate (if given a mapping) and convert; missing fields are filled from ``raw``.

    Raises ``InputError`` naming ``file:line`` and the field when the record is invalid.
    """
    if not isinstance(rec, UtteranceRecord):
        try:
            rec = UtteranceRecord.model_validate(rec)
        except ValidationError as exc:
            raise InputError(format_validation_error(exc, file=file, line=line)) from None
    given = rec.model_fields_set
    if rec.raw is not None:
        raw = rec.raw
        parsed = richtext.parse_one(raw)
    else:  # validated: text is set
        raw = richtext.format_group(rec.lang, rec.emotion, rec.event, None, rec.text or "")
        parsed = richtext.parse_one(raw)
    c = rec.confidence
    return Utterance(
        call_id=rec.call_id,
        channel=rec.channel,
        speaker=rec.speaker,
        start=rec.start,
        end=rec.end,
        source=rec.source,
        lang=rec.lang if "lang" in given else parsed.lang,
        emotion=rec.emotion if "emotion" in given else parsed.emotion,
        event=rec.event if "event" in given else parsed.event,
        text=rec.text if rec.text is not None else parsed.text,
        raw=raw,
        confidence=TagConfidence(lang=c.lang, emotion=c.emotion, event=c.event),
        unknown_tags=parsed.unknown_tags,
        original=rec.original,
    )


def check_transcript_size(utterances: Iterable[Utterance], *, file: str | None = None) -> int:
    """The call's total text length; ``InputError`` above ``MAX_TRANSCRIPT_CHARS``.

    Each record is bounded by ``core.wire``; this bounds their sum, which is what a call's
    analysis costs (the API answers it with 422 before the call is queued)."""
    total = 0
    for u in utterances:
        total += len(u.text)
        if total > MAX_TRANSCRIPT_CHARS:
            where = file or "<input>"
            raise InputError(
                f"{where}: utterances: the transcript holds more than {MAX_TRANSCRIPT_CHARS} "
                "characters of text (MAX_TRANSCRIPT_CHARS); split the call or send less of it"
            )
    return total
