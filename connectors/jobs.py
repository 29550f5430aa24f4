"""Call jobs: what the service's worker runs, and which of them a restart puts back.

Every call the service accepted has its input in the database or on disk before the client
heard 202: a recording's file, a posted transcript (``connectors.call_inputs``), a live
call's utterances as they came. So after a crash or a stop, every unfinished call can run
again from what is stored (``recovery_jobs``); decisions already sent are not sent twice,
since outbox ids are stable.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from callsense.connectors.call_inputs import posted_call_ids
from callsense.connectors.calls_store import CallRecord, CallStore
from callsense.connectors.endpoint import RouteContext
from callsense.pipeline.model import CallTranscript

__all__ = ["LIVE_RECOVERED", "LOST_INPUT", "Job", "recovery_jobs"]

log = logging.getLogger(__name__)

LIVE_RECOVERED = "gateway stopped mid-call; decisions restored by replaying its stored utterances"
LOST_INPUT = "interrupted by a restart; post the call again"


@dataclass(frozen=True, slots=True)
class Job:
    """One call to analyze: an uploaded file, or a transcript: posted as JSON (read from the
    call's stored input when it runs, ``transcript`` None) or a live call's, replayed."""

    call_id: str
    kind: Literal["audio", "transcript"]
    policy: str | None = None
    language: str | None = None
    audio_path: Path | None = None
    transcript: CallTranscript | None = None
    note: str | None = None  # kept as the call's error text after a successful run
    context: RouteContext | None = None  # a recovered live call's platform ids (its routes)


def recovery_jobs(store: CallStore, gateway_id: str) -> list[Job]:
    """The jobs of every call a previous run of ``gateway_id`` accepted and did not finish,
    oldest first after the live ones; a call whose input is gone fails, saying so."""
    return _live_jobs(store, gateway_id) + _pending_jobs(store)


def _live_jobs(store: CallStore, gateway_id: str) -> list[Job]:
    """Live calls the gateway was running when it died: their utterances were stored as they
    came, so replaying them through the policies gives the decisions the call would have
    had, routed with the platform ids stored with the call, as the live session routed them."""
    jobs = []
    for call_id in store.interrupted_live_calls(gateway_id):
        record = store.get(call_id)
        transcript = store.transcript(call_id)
        if record is None or transcript is None:
            continue
        jobs.append(Job(call_id, "transcript", transcript=transcript, note=LIVE_RECOVERED,
                        context=record.context))  # fmt: skip
        log.warning("live call %s: interrupted by a restart, replaying it", call_id)
    return jobs


def _pending_jobs(store: CallStore) -> list[Job]:
    """Recordings and posted transcripts accepted but not finished; those whose input is
    gone (a file removed, a call posted to a callsense that kept no inputs) fail."""
    posted = posted_call_ids(store.engine)
    jobs = []
    for record in store.pending():
        job = _pending_job(record, posted)
        if job is None:
            store.fail(record.id, LOST_INPUT)
            continue
        jobs.append(job)
        log.info("call %s: re-queued after a restart", record.id)
    return jobs


def _pending_job(record: CallRecord, posted: set[str]) -> Job | None:
    if record.kind == "transcript" and record.id in posted:
        return Job(record.id, "transcript", record.requested_policy)
    if record.kind == "audio" and record.audio_path and Path(record.audio_path).exists():
        path = Path(record.audio_path)
        return Job(record.id, "audio", record.requested_policy, record.language, path)
    return None
