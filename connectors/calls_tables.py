"""The calls store's tables: one row per call, its utterances (transcribe JSONL record
shape) and its decisions (``Decision.to_dict`` shape), all removed together."""

from __future__ import annotations

import re
from typing import Literal

from sqlalchemy import Boolean, Column, Float, ForeignKey, Integer, String, Table, Text

from callsense.connectors.storage import metadata

__all__ = [
    "CALL_ID_RE",
    "CallStatus",
    "call_utterances_table",
    "calls_table",
]

CallStatus = Literal["queued", "running", "done", "failed"]
CALL_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}")
"""Call ids double as audio file names: no slashes, no leading dot."""

calls_table = Table(
    "callsense_calls",
    metadata,
    Column("id", String(128), primary_key=True),
    Column("status", String(16), nullable=False),
    Column("kind", String(16), nullable=False),  # audio | transcript | live
    Column("policy", String(255), nullable=True),  # names of the policies run, comma-joined
    Column("requested_policy", String(64), nullable=True),  # None: the active set
    Column("language", String(16), nullable=True),
    Column("source", String(255), nullable=True),
    Column("audio_path", Text, nullable=True),
    Column("created_at", Float, nullable=False, index=True),
    Column("started_at", Float, nullable=True),
    Column("finished_at", Float, nullable=True),
    Column("duration_s", Float, nullable=True),
    Column("escalated", Boolean, nullable=True),
    Column("top_priority", String(16), nullable=True),
    Column("utterance_count", Integer, nullable=False, default=0),
    Column("decision_count", Integer, nullable=False, default=0),
    Column("summary", Text, nullable=True),
    Column("replies", Text, nullable=True),
    Column("error", Text, nullable=True),
)

call_utterances_table = Table(
    "callsense_call_utterances",
    metadata,
    Column(
        "call_id",
        String(128),
        ForeignKey("callsense_calls.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("seq", Integer, primary_key=True),
    Column("record", Text, nullable=False),
)
