"""Posted transcripts waiting for the worker: a call's input is in the database before the
client hears 202, so a crash or a restart loses no accepted call (issue 19).

The input is stored as the privacy guard leaves it (redacted like every stored utterance;
in mode ``redacted_and_original`` the original sealed), in the transcribe JSONL record
shape, and removed in the transaction that ends the call (done, failed or deleted): it
never outlives the call's own utterances. The worker reads every posted call from here, so
a call runs on the same input whether or not a restart came between.
"""

from __future__ import annotations

import json

from sqlalchemy import Connection, Engine, delete, select

from callsense.connectors.calls_tables import call_inputs_table
from callsense.pipeline.model import CallTranscript
from callsense.pipeline.records import record_from_utterance, utterance_from_record

__all__ = ["forget_input", "keep_input", "posted_call_ids", "posted_transcript"]


def keep_input(conn: Connection, call_id: str, transcript: CallTranscript | None) -> None:
    """Store ``transcript`` (already guarded) as ``call_id``'s input; None stores nothing."""
    if transcript is None:
        return
    records = [record_from_utterance(u) for u in transcript.utterances]
    body = json.dumps(
        {"duration": transcript.duration, "utterances": records},
        ensure_ascii=False,
        separators=(",", ":"),
        allow_nan=False,
    )
    conn.execute(call_inputs_table.insert().values(call_id=call_id, transcript=body))


def forget_input(conn: Connection, call_id: str) -> None:
    """The call is over: its stored utterances (if any) are now the record of it."""
    conn.execute(delete(call_inputs_table).where(call_inputs_table.c.call_id == call_id))


def posted_transcript(engine: Engine, call_id: str) -> CallTranscript | None:
    """The input of a posted call not yet analyzed (None: none is stored)."""
    t = call_inputs_table
    with engine.connect() as conn:
        body = conn.execute(select(t.c.transcript).where(t.c.call_id == call_id)).scalar()
    if body is None:
        return None
    data = json.loads(body)
    utterances = tuple(
        utterance_from_record(r, file=f"call {call_id}", line=i)
        for i, r in enumerate(data["utterances"])
    )
    return CallTranscript(call_id, utterances, duration=data["duration"], source="api")


def posted_call_ids(engine: Engine) -> set[str]:
    """The calls whose posted input is stored: accepted, not analyzed yet."""
    with engine.connect() as conn:
        return set(conn.execute(select(call_inputs_table.c.call_id)).scalars())
