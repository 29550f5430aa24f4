"""The calls store's tables: one row per call, its utterances (transcribe JSONL record
shape) and its decisions (``Decision.to_dict`` shape), all removed together.

A live call's row also keeps the contact center's ids of the call (``RouteContext``: a
Twilio CallSid, a Genesys conversation and participant, an Amazon Connect contact), so the
API shows them and a gateway's crash recovery routes the replayed decisions where the call
is; ``upgrade`` adds those columns to a database made before them.

A posted transcript's input waits in ``callsense_call_inputs`` until its call is analyzed,
so a restart finishes every accepted call (``create_schema`` makes the table in an older
database: its queued transcript calls, which had no stored input, fail as before)."""

from __future__ import annotations

import re
from dataclasses import fields
from typing import Literal

from sqlalchemy import (
    Boolean,
    Column,
    Engine,
    Float,
    ForeignKey,
    Integer,
    String,
    Table,
    Text,
    inspect,
    text,
)

from callsense.connectors.endpoint import RouteContext
from callsense.connectors.storage import UPGRADES, metadata

__all__ = [
    "CALL_ID_RE",
    "CONTEXT_COLUMNS",
    "CallStatus",
    "call_inputs_table",
    "call_utterances_table",
    "calls_table",
]

CallStatus = Literal["queued", "running", "done", "failed"]
CALL_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}")
"""Call ids double as audio file names: no slashes, no leading dot."""

CONTEXT_COLUMNS = tuple(f.name for f in fields(RouteContext))
"""``RouteContext``'s fields (call_sid, conversation_id, participant_id, contact_id), one
nullable column each; the parsers keep them to 128 characters."""

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
    *(Column(name, String(128), nullable=True) for name in CONTEXT_COLUMNS),
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

call_inputs_table = Table(
    "callsense_call_inputs",
    metadata,
    Column(
        "call_id",
        String(128),
        ForeignKey("callsense_calls.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    # JSON {"duration", "utterances": [records]}: the utterances as the privacy guard left
    # them (redacted, as every stored utterance); removed when the call is done or failed
    Column("transcript", Text, nullable=False),
)


def upgrade(engine: Engine) -> None:
    """Give a calls table made before platform ids were stored its ``RouteContext`` columns
    (nullable: older calls simply have none)."""
    columns = {c["name"] for c in inspect(engine).get_columns(calls_table.name)}
    missing = [name for name in CONTEXT_COLUMNS if name not in columns]
    if missing:
        with engine.begin() as conn:
            for name in missing:
                conn.execute(text(f"ALTER TABLE {calls_table.name} ADD COLUMN {name} VARCHAR(128)"))


UPGRADES.append(upgrade)
