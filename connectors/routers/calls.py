"""``/v1/calls``: post a recording or a transcript, read what came out, page, delete.

Posting answers 202 at once with the call id; the analysis runs on the runtime's worker.
A recording is probed before it is accepted (not audio, too long: 422 now, not a failed job
later) and kept under ``data_dir/audio/<call_id>.<ext>`` until the call is deleted; a
transcript is kept, redacted, in the database until it is analyzed.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import secrets
from dataclasses import asdict
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from callsense.connectors.calls_store import CALL_ID_RE, CallExistsError, CallRecord
from callsense.connectors.routers.common import (
    PROBLEM_RESPONSES,
    Deleted,
    Problem,
    RuntimeDep,
    read_body,
    receive_multipart,
)
from callsense.connectors.runtime import Job, Runtime
from callsense.connectors.service_settings import QueueFullError
from callsense.core.errors import InputError
from callsense.core.wire import UtteranceRecord
from callsense.pipeline.audio import AudioConfig, AudioDecodeTimeout, NotAudioError, probe
from callsense.pipeline.model import CallTranscript
from callsense.pipeline.recognizer import LANGUAGES
from callsense.pipeline.records import (
    check_transcript_size,
    format_validation_error,
    utterance_from_record,
)
from callsense.rules.model import Decision

__all__ = ["router"]

log = logging.getLogger(__name__)

router = APIRouter(prefix="/v1/calls", tags=["calls"], responses=PROBLEM_RESPONSES)

_MAX_UTTERANCES = 100_000
_JSON_LIMIT = 64 * 1024 * 1024


# -- models ---------------------------------------------------------------------------------


class CallAccepted(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str
    status: Literal["queued", "running", "done", "failed"]


class TranscriptIn(BaseModel):
    """A transcript the client already has: records in ``callsense transcribe`` JSONL shape
    (``core.wire``), kept as mappings here and checked one by one, so each problem names its
    ``utterances[i]``; every record takes the transcript's ``call_id``."""

    model_config = ConfigDict(extra="forbid")

    call_id: str | None = Field(None, pattern=CALL_ID_RE.pattern)
    policy: str | None = Field(None, pattern=r"^[A-Za-z0-9_-]{1,64}$")
    duration: float | None = Field(None, ge=0, allow_inf_nan=False)
    utterances: list[dict[str, Any]] = Field(max_length=_MAX_UTTERANCES)


class ReplyOut(BaseModel):
    at: float | None
    reason: str | None
    template: str | None
    lang: str | None
    text: str
    engine: str | None = None
    duration_s: float | None = None


class CallItem(BaseModel):
    id: str
    status: Literal["queued", "running", "done", "failed"]
    kind: str
    policy: str | None
    language: str | None
    source: str | None
    created_at: dt.datetime
    started_at: dt.datetime | None
    finished_at: dt.datetime | None
    duration_s: float | None
    escalated: bool | None
    top_priority: str | None
    utterance_count: int
    decision_count: int
    error: str | None
    # a live call's ids in its contact center (None for recordings and posted transcripts)
    conversation_id: str | None = Field(None, description="Genesys Cloud conversation id")
    participant_id: str | None = Field(None, description="Genesys Cloud participant id")
    call_sid: str | None = Field(None, description="Twilio CallSid")
    contact_id: str | None = Field(None, description="Amazon Connect contact id")


class CallDetail(CallItem):
    utterances: list[UtteranceRecord]  # JSONL records; the sealed original is never sent
    decisions: list[Decision]  # rules.model.Decision; ``at`` is audio seconds
    replies: list[ReplyOut]
    summary: dict[str, Any] | None


class CallPageOut(BaseModel):
    items: list[CallItem]
    next_cursor: str | None = Field(None, description="pass as ?cursor= for the next page")


def _ts(value: float | None) -> dt.datetime | None:
    return None if value is None else dt.datetime.fromtimestamp(value, dt.UTC)


def _item(record: CallRecord) -> dict[str, Any]:
    data = asdict(record)
    for key in ("audio_path", "summary", "replies", "requested_policy"):
        data.pop(key)
    for key in ("created_at", "started_at", "finished_at"):
        data[key] = _ts(data[key])
    data |= data.pop("context")  # the platform ids, each its own field
    return data


# -- helpers --------------------------------------------------------------------------------


def _new_call_id() -> str:
    return f"call_{secrets.token_hex(8)}"


def _check_call_id(call_id: str) -> str:
    if not CALL_ID_RE.fullmatch(call_id):
        raise Problem(404, "Not Found", "no such call")
    return call_id


def _check_policy(runtime: Runtime, policy: str | None) -> list[str]:
    """The names a new call will run with; 400/404 for a bad or unknown name."""
    if policy is None:
        return [d.name for d in runtime.policies.active()]
    try:
        runtime.policies.check_name(policy)
    except InputError as exc:
        raise Problem(400, "Bad Request", str(exc)) from None
    if runtime.policies.get(policy) is None:
        raise Problem(404, "Not Found", f"no policy named {policy!r}")
    return [policy]


def probe_audio(path: str, cfg: AudioConfig, label: str) -> float | None:
    """Refuse what is not audio, or too long, before queueing it; the duration if known.
    The decoder's own probe, given a minute at most: the client waits for the answer."""
    try:
        found = probe(path, cfg, name=label, timeout_s=60.0)
    except AudioDecodeTimeout:
        raise InputError(f"{label}: could not read the file's header; check the file") from None
    except NotAudioError:
        raise InputError(f"{label}: no audio stream found; upload an audio file") from None
    duration = found.duration  # estimated or not: a 422 now beats a failed job later
    if duration is not None and duration > cfg.max_duration_s:
        raise InputError(
            f"{label}: the audio lasts {duration:.0f} s, more than audio.max_duration_s "
            f"({cfg.max_duration_s:.0f} s); split the recording"
        )
    return duration


def _submit(runtime: Runtime, job: Job, record: CallRecord) -> CallAccepted:
    try:
        runtime.submit(job)
    except QueueFullError as exc:
        runtime.remove_call(record.id)
        raise Problem(503, "Service Unavailable", str(exc), headers={"Retry-After": "30"}) from None
    log.info("call %s: queued (%s)", record.id, job.kind)
    return CallAccepted(id=record.id, status="queued")


async def _post_audio(request: Request, runtime: Runtime) -> CallAccepted:
    settings = runtime.settings
    upload = await receive_multipart(request, runtime.audio_dir, settings.max_upload_bytes)
    try:
        if upload.path is None or upload.size == 0:
            raise Problem(
                422,
                "Unprocessable Content",
                "no audio: send the recording as a non-empty file field 'audio'",
            )
        fields = upload.fields
        unknown = sorted(set(fields) - {"language", "call_id", "policy"})
        if unknown:
            raise Problem(422, "Unprocessable Content", f"unknown form fields: {unknown}")
        language = fields.get("language") or None
        if language is not None and language not in LANGUAGES:
            raise Problem(
                422,
                "Unprocessable Content",
                f"language: one of {', '.join(LANGUAGES)} (got {language!r})",
            )
        call_id = fields.get("call_id") or _new_call_id()
        if not CALL_ID_RE.fullmatch(call_id):
            raise Problem(
                422,
                "Unprocessable Content",
                "call_id: use 1-128 of A-Z a-z 0-9 _ . : - (no leading punctuation)",
            )
        policy = fields.get("policy") or None
        names = _check_policy(runtime, policy)
        label = upload.filename or "upload"
        try:
            await asyncio.to_thread(probe_audio, str(upload.path), runtime.cfg.audio, label)
        except InputError as exc:
            raise Problem(422, "Unprocessable Content", str(exc)) from None
        final = runtime.audio_dir / f"{call_id}{upload.suffix}"
        if runtime.store.get(call_id) is not None:
            raise Problem(409, "Conflict", f"call_id {call_id!r} already exists")
        upload.path.replace(final)
        upload.path = final
        try:
            record = runtime.store.create(
                call_id,
                kind="audio",
                policy=",".join(names),
                requested_policy=policy,
                language=language,
                source=upload.filename,
                audio_path=str(final),
            )
        except CallExistsError as exc:
            raise Problem(409, "Conflict", str(exc)) from None
    except BaseException:
        upload.discard()
        raise
    return _submit(runtime, Job(call_id, "audio", policy, language, final), record)


async def _post_transcript(request: Request, runtime: Runtime) -> CallAccepted:
    body = await read_body(request, min(_JSON_LIMIT, runtime.settings.max_upload_bytes))
    try:
        data = TranscriptIn.model_validate_json(body)
    except ValidationError as exc:
        raise Problem(
            422,
            "Unprocessable Content",
            "the transcript is not valid",
            problems=format_validation_error(exc, file="body").split("; "),
        ) from None
    if not data.utterances:
        raise Problem(422, "Unprocessable Content", "utterances: at least one is needed")
    first_id = data.utterances[0].get("call_id")
    call_id = data.call_id or (first_id if isinstance(first_id, str) else None) or _new_call_id()
    if not CALL_ID_RE.fullmatch(call_id):
        raise Problem(422, "Unprocessable Content", f"call_id {call_id!r} is not a valid id")
    problems: list[str] = []
    utterances = []
    for i, rec in enumerate(data.utterances):
        try:
            utterances.append(
                utterance_from_record({**rec, "call_id": call_id}, file=f"utterances[{i}]")
            )
        except InputError as exc:
            problems.append(str(exc))
        if len(problems) >= 20:
            break
    if problems:
        raise Problem(
            422, "Unprocessable Content", "some utterances are not valid", problems=problems
        )
    try:
        check_transcript_size(utterances, file="body")
    except InputError as exc:
        raise Problem(413, "Content Too Large", str(exc)) from None
    utterances.sort(key=lambda u: (u.start, u.channel))
    names = _check_policy(runtime, data.policy)
    duration = data.duration if data.duration is not None else max(u.end for u in utterances)
    transcript = CallTranscript(call_id, tuple(utterances), duration=duration, source="api")
    try:  # stored (redacted) before the 202: a restart still runs it
        record = await asyncio.to_thread(
            runtime.accept_transcript, transcript, policy=data.policy, policies=names
        )
    except CallExistsError as exc:
        raise Problem(409, "Conflict", str(exc)) from None
    return _submit(runtime, Job(call_id, "transcript", data.policy), record)


# -- routes ---------------------------------------------------------------------------------


_POST_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["audio"],
                    "properties": {
                        "audio": {"type": "string", "format": "binary"},
                        "language": {"type": "string", "enum": list(LANGUAGES)},
                        "call_id": {"type": "string", "pattern": CALL_ID_RE.pattern},
                        "policy": {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$"},
                    },
                }
            },
            "application/json": {"schema": TranscriptIn.model_json_schema()},
        },
    }
}


@router.post("", status_code=202, response_model=CallAccepted, openapi_extra=_POST_BODY)
async def post_call(request: Request, runtime: RuntimeDep) -> CallAccepted:
    """Analyze a call: a recording (multipart ``audio`` + optional ``language``, ``call_id``,
    ``policy``) or an existing transcript (JSON ``{"call_id", "utterances": [...]}``)."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype == "application/json":
        return await _post_transcript(request, runtime)
    if ctype == "multipart/form-data":
        return await _post_audio(request, runtime)
    raise Problem(
        415,
        "Unsupported Media Type",
        "send multipart/form-data (a recording) or application/json (a transcript)",
    )


@router.get("", response_model=CallPageOut)
def list_calls(
    runtime: RuntimeDep,
    escalated: bool | None = None,
    since: Annotated[dt.datetime | None, Query(description="ISO 8601 or Unix time")] = None,
    until: Annotated[dt.datetime | None, Query(description="ISO 8601 or Unix time")] = None,
    policy: Annotated[str | None, Query(pattern=r"^[A-Za-z0-9_-]{1,64}$")] = None,
    status: Literal["queued", "running", "done", "failed"] | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
) -> CallPageOut:
    """Newest first, ``limit`` per page; filters combine."""

    def stamp(value: dt.datetime | None) -> float | None:
        if value is None:
            return None
        return (value if value.tzinfo else value.replace(tzinfo=dt.UTC)).timestamp()

    try:
        page = runtime.store.list(
            escalated=escalated,
            since=stamp(since),
            until=stamp(until),
            policy=policy,
            status=status,
            limit=limit,
            cursor=cursor,
        )
    except InputError as exc:
        raise Problem(400, "Bad Request", str(exc)) from None
    return CallPageOut(
        items=[CallItem.model_validate(_item(r)) for r in page.items],
        next_cursor=page.next_cursor,
    )


@router.get("/{call_id}", response_model=CallDetail)
def get_call(call_id: str, runtime: RuntimeDep) -> CallDetail:
    """Status, and when done: utterances, decisions, replies and the summary."""
    record = runtime.store.get(_check_call_id(call_id))
    if record is None:
        raise Problem(404, "Not Found", "no such call")
    return CallDetail.model_validate(
        {
            **_item(record),
            "utterances": runtime.store.utterances(call_id),
            "decisions": runtime.store.decisions(call_id),
            "replies": record.replies or [],
            "summary": record.summary,
        }
    )


@router.delete("/{call_id}", response_model=Deleted)
def delete_call(call_id: str, runtime: RuntimeDep) -> Deleted:
    """Remove the call's audio, utterances, decisions, summary, cache entries and delivered
    webhook payloads."""
    if not runtime.remove_call(_check_call_id(call_id)):
        raise Problem(404, "Not Found", "no such call")
    return Deleted(id=call_id)


class Resolved(BaseModel):
    id: str
    resolved: bool
    cancelled_follow_ups: int


@router.post("/{call_id}/resolve", response_model=Resolved)
def resolve_call(call_id: str, runtime: RuntimeDep) -> Resolved:
    """The call's issue is handled: pending SLA follow-up escalations for it will not fire."""
    if runtime.store.get(_check_call_id(call_id)) is None:
        raise Problem(404, "Not Found", "no such call")
    cancelled = runtime.resolve_call(call_id)
    return Resolved(id=call_id, resolved=True, cancelled_follow_ups=cancelled)
