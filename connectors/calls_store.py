"""Calls the service has seen: status, utterances, decisions, replies and summary per call.

Rows live next to the outbox in the same database (``connectors.storage``), so one
``DELETE /v1/calls/{id}`` can remove everything of a call in one place. Utterances are
stored in the transcribe JSONL record shape (``pipeline.records``), decisions in
``Decision.to_dict`` shape: the API returns what the CLI writes. A live call also keeps its
contact center's ids (``CallRecord.context``); a posted transcript, its input until the
call is analyzed (``connectors.call_inputs``).
"""

from __future__ import annotations

import base64
import binascii
import json
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import (
    Connection,
    Engine,
    and_,
    delete,
    exists,
    func,
    literal,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite

from callsense.connectors.call_inputs import forget_input, keep_input
from callsense.connectors.calls_tables import (
    CALL_ID_RE,
    CONTEXT_COLUMNS,
    CallStatus,
    call_utterances_table,
    calls_table,
)
from callsense.connectors.endpoint import RouteContext
from callsense.connectors.outbox_rows import decision_row, decisions_table, outbox_table
from callsense.connectors.storage import create_schema
from callsense.core.errors import InputError
from callsense.pipeline.model import CallTranscript, Gap, Utterance
from callsense.pipeline.records import record_from_utterance, utterance_from_record
from callsense.pipeline.summary import CallResult
from callsense.rules.model import Decision

__all__ = [
    "CALL_ID_RE",
    "CallExistsError",
    "CallPage",
    "CallRecord",
    "CallStatus",
    "CallStore",
]


class CallExistsError(InputError):
    """A call with this id is already stored (ids are chosen by clients, so this happens)."""


@dataclass(frozen=True, slots=True)
class CallRecord:
    """One call's row (without its utterances and decisions, which can be long)."""

    id: str
    status: CallStatus
    kind: str
    policy: str | None
    requested_policy: str | None
    language: str | None
    source: str | None
    audio_path: str | None
    created_at: float
    started_at: float | None
    finished_at: float | None
    duration_s: float | None
    escalated: bool | None
    top_priority: str | None
    utterance_count: int
    decision_count: int
    summary: dict[str, Any] | None
    replies: list[dict[str, Any]] | None
    error: str | None
    # the platform's ids of a live call (empty for recordings): the API shows them and a
    # crash recovery routes the call's replayed decisions with them
    context: RouteContext = field(default_factory=RouteContext)


@dataclass(frozen=True, slots=True)
class CallPage:
    items: tuple[CallRecord, ...]
    next_cursor: str | None


def _record(row: Any) -> CallRecord:
    """The row as a ``CallRecord`` (the columns are its fields; JSON ones decoded)."""
    m = dict(row._mapping)
    context = RouteContext(**{name: m.pop(name) for name in CONTEXT_COLUMNS})
    for key in ("summary", "replies"):
        m[key] = json.loads(m[key]) if m[key] else None
    for key in ("utterance_count", "decision_count"):
        m[key] = m[key] or 0
    return CallRecord(**m, context=context)


def _context_values(context: RouteContext) -> dict[str, str]:
    """The ids ``context`` has, as column values (kept to the columns' 128 characters)."""
    return {name: value[:128] for name, value in context.to_dict().items()}


def encode_cursor(created_at: float, call_id: str) -> str:
    return base64.urlsafe_b64encode(f"{created_at!r}|{call_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[float, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        stamp, _, call_id = raw.partition("|")
        return float(stamp), call_id
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise InputError("cursor: not a cursor this API returned") from None


class CallStore:
    """Calls, their utterances and decisions, over one SQLAlchemy engine."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        create_schema(engine)

    # -- writing ---------------------------------------------------------------------------

    def create(
        self,
        call_id: str,
        *,
        kind: str,
        policy: str | None = None,
        requested_policy: str | None = None,
        language: str | None = None,
        source: str | None = None,
        audio_path: str | None = None,
        status: CallStatus = "queued",
        context: RouteContext | None = None,
        posted: CallTranscript | None = None,
    ) -> CallRecord:
        """A new call row; ``CallExistsError`` if the id is taken.

        ``policy``: the names of the policies the call runs, comma-joined (what ``list``
        filters on); ``requested_policy``: the one the client named, None for the active set;
        ``context``: a live call's platform ids; ``posted``: a posted transcript (guarded),
        stored with the row until the call is analyzed.
        """
        if not CALL_ID_RE.fullmatch(call_id):
            raise InputError(f"call_id {call_id!r}: use 1-128 of A-Z a-z 0-9 _ . : -")
        now = time.time()
        t = calls_table
        with self.engine.begin() as conn:
            if conn.execute(select(t.c.id).where(t.c.id == call_id)).first() is not None:
                raise CallExistsError(f"call_id {call_id!r} already exists")
            conn.execute(
                t.insert().values(
                    id=call_id,
                    status=status,
                    kind=kind,
                    policy=policy,
                    requested_policy=requested_policy,
                    language=language,
                    source=source,
                    audio_path=audio_path,
                    created_at=now,
                    started_at=now if status == "running" else None,
                    utterance_count=0,
                    decision_count=0,
                    **_context_values(context or RouteContext()),
                )
            )
            keep_input(conn, call_id, posted)
        record = self.get(call_id)
        assert record is not None
        return record

    def update_context(self, call_id: str, context: RouteContext) -> None:
        """Platform ids learnt after the call was created (an AudioHook reconnect): the ids
        ``context`` has replace the stored ones, the others stay."""
        values = _context_values(context)
        if values:
            self._update(call_id, **values)

    def mark_running(self, call_id: str) -> None:
        self._update(call_id, status="running", started_at=time.time(), error=None)

    def fail(self, call_id: str, error: str) -> None:
        """The job failed; ``error`` must not carry transcript text (error records do not)."""
        self._update(call_id, status="failed", finished_at=time.time(), error=error, over=True)

    def save_result(self, call_id: str, result: CallResult) -> None:
        """A batch job's whole output, replacing anything stored before, in one transaction."""
        transcript, decisions, summary = result.transcript, result.decisions, result.summary
        replies = [r.record() for r in result.replies]
        u, d = call_utterances_table, decisions_table
        now = time.time()
        rows = [decision_row(x, now=now, seq=i) for i, x in enumerate(decisions)]
        with self.engine.begin() as conn:
            conn.execute(delete(u).where(u.c.call_id == call_id))
            # a rerun's decisions keep their ids (and their outbox messages); others go
            conn.execute(
                delete(d).where(d.c.call_id == call_id, d.c.id.not_in([r["id"] for r in rows]))
            )
            if transcript.utterances:
                conn.execute(
                    u.insert(),
                    [
                        {"call_id": call_id, "seq": i, "record": _dumps(record_from_utterance(x))}
                        for i, x in enumerate(transcript.utterances)
                    ],
                )
            self._put_decisions(conn, rows)
            forget_input(conn, call_id)
            conn.execute(
                update(calls_table)
                .where(calls_table.c.id == call_id)
                .values(
                    status="done",
                    finished_at=time.time(),
                    duration_s=transcript.duration,
                    escalated=bool(summary.get("escalated")),
                    top_priority=summary.get("top_priority"),
                    utterance_count=len(transcript.utterances),
                    decision_count=len(decisions),
                    summary=_dumps(dict(summary)),
                    replies=_dumps(list(replies)),
                    error=None,
                )
            )

    def add_utterance(self, call_id: str, utterance: Utterance) -> int:
        """Append one utterance of a live call; returns its seq (index in the call)."""
        u = call_utterances_table
        with self.engine.begin() as conn:
            seq = conn.execute(
                select(func.count()).select_from(u).where(u.c.call_id == call_id)
            ).scalar_one()
            record = _dumps(record_from_utterance(utterance))
            conn.execute(u.insert().values(call_id=call_id, seq=seq, record=record))
            conn.execute(
                update(calls_table)
                .where(calls_table.c.id == call_id)
                .values(utterance_count=seq + 1)
            )
        return int(seq)

    def add_decisions(self, call_id: str, decisions: Iterable[Decision]) -> None:
        """Append decisions of a live call as they fire."""
        items = list(decisions)
        if not items:
            return
        d = decisions_table
        now = time.time()
        with self.engine.begin() as conn:
            base = conn.execute(
                select(func.count()).select_from(d).where(d.c.call_id == call_id)
            ).scalar_one()
            rows = [decision_row(x, now=now, seq=base + i) for i, x in enumerate(items)]
            self._put_decisions(conn, rows)
            escalated = any(x.action == "escalate" for x in items)
            values: dict[str, Any] = {"decision_count": base + len(items)}
            if escalated:
                values["escalated"] = True
            conn.execute(update(calls_table).where(calls_table.c.id == call_id).values(**values))

    def _put_decisions(self, conn: Connection, rows: list[dict[str, Any]]) -> None:
        """Insert decision rows, or give existing ones (the outbox's) their place in the call."""
        if not rows:
            return
        dialect = postgresql if self.engine.dialect.name == "postgresql" else sqlite
        stmt = dialect.insert(decisions_table)
        conn.execute(
            stmt.on_conflict_do_update(index_elements=["id"], set_={"seq": stmt.excluded.seq}),
            rows,
        )

    def finish(
        self,
        call_id: str,
        summary: Mapping[str, Any] | None = None,
        *,
        duration_s: float | None = None,
        status: CallStatus = "done",
        error: str | None = None,
        replies: Sequence[Mapping[str, Any]] | None = None,
    ) -> None:
        """End a live call (its utterances and decisions were appended as they came)."""
        values: dict[str, Any] = {"status": status, "finished_at": time.time(), "error": error}
        if replies is not None:
            values["replies"] = _dumps([dict(r) for r in replies])
        if duration_s is not None:
            values["duration_s"] = duration_s
        if summary is not None:
            values |= {
                "summary": _dumps(dict(summary)),
                "escalated": bool(summary.get("escalated")),
                "top_priority": summary.get("top_priority"),
            }
        self._update(call_id, **values)

    def delete(self, call_id: str) -> CallRecord | None:
        """Remove the call's rows; returns what was removed (the caller removes its audio)."""
        record = self.get(call_id)
        if record is None:
            return None
        o, d = outbox_table, decisions_table
        with self.engine.begin() as conn:
            conn.execute(
                delete(call_utterances_table).where(call_utterances_table.c.call_id == call_id)
            )
            forget_input(conn, call_id)
            # decisions still owed to an endpoint stay until the outbox is done with them
            conn.execute(
                delete(d).where(d.c.call_id == call_id, ~exists().where(o.c.decision_id == d.c.id))
            )
            conn.execute(delete(calls_table).where(calls_table.c.id == call_id))
        return record

    def _update(self, call_id: str, *, over: bool = False, **values: Any) -> None:
        """Set ``values``; ``over``: the call has ended, a posted input goes with it."""
        with self.engine.begin() as conn:
            conn.execute(update(calls_table).where(calls_table.c.id == call_id).values(**values))
            if over:
                forget_input(conn, call_id)

    # -- reading ---------------------------------------------------------------------------

    def get(self, call_id: str) -> CallRecord | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(calls_table).where(calls_table.c.id == call_id)).first()
        return None if row is None else _record(row)

    def utterances(self, call_id: str) -> list[dict[str, Any]]:
        """Records in the transcribe JSONL shape, in call order."""
        u = call_utterances_table
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(u.c.record).where(u.c.call_id == call_id).order_by(u.c.seq)
            ).all()
        return [json.loads(r.record) for r in rows]

    def decisions(self, call_id: str) -> list[dict[str, Any]]:
        d = decisions_table
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(d.c.body)
                .where(d.c.call_id == call_id, d.c.seq.is_not(None))
                .order_by(d.c.seq)
            ).all()
        return [json.loads(r.body) for r in rows]

    def transcript(self, call_id: str) -> CallTranscript | None:
        """The stored call as the pipeline sees it (for backtests and replays)."""
        record = self.get(call_id)
        if record is None:
            return None
        utterances = tuple(
            utterance_from_record(r, file=f"call {call_id}", line=i)
            for i, r in enumerate(self.utterances(call_id))
        )
        summary = record.summary or {}
        return CallTranscript(
            call_id=call_id,
            utterances=utterances,
            duration=record.duration_s,
            channels=summary.get("channels"),
            source=record.source,
            gaps=tuple(
                Gap(float(g["start"]), float(g["duration"]), g["kind"])
                for g in summary.get("gaps") or ()
            ),
        )

    def done_call_ids(self, limit: int) -> list[str]:
        """Newest finished calls first (what a policy backtest replays)."""
        t = calls_table
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(t.c.id)
                .where(t.c.status == "done")
                .order_by(t.c.created_at.desc(), t.c.id.desc())
                .limit(limit)
            ).all()
        return [r.id for r in rows]

    def annotate(self, call_id: str, note: str) -> None:
        """Keep a note in the call's error field (no transcript text)."""
        self._update(call_id, error=note)

    def interrupted_live_calls(self, gateway_id: str) -> list[str]:
        """Live calls of ``gateway_id`` still marked running (that gateway stopped mid-call)."""
        t = calls_table
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(t.c.id).where(
                    t.c.kind == "live",
                    t.c.status == "running",
                    t.c.source.like(f"%@{gateway_id}"),
                )
            ).all()
        return [r.id for r in rows]

    def pending(self) -> list[CallRecord]:
        """Calls a previous run accepted but did not finish (re-queued at start-up)."""
        t = calls_table
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(t)
                .where(t.c.status.in_(("queued", "running")), t.c.kind != "live")
                .order_by(t.c.created_at)
            ).all()
        return [_record(r) for r in rows]

    def list(
        self,
        *,
        escalated: bool | None = None,
        since: float | None = None,
        until: float | None = None,
        policy: str | None = None,
        status: CallStatus | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> CallPage:
        """Newest first; ``cursor`` continues after the last item of the previous page."""
        t = calls_table
        query = select(t).order_by(t.c.created_at.desc(), t.c.id.desc()).limit(limit + 1)
        if escalated is not None:
            query = query.where(
                t.c.escalated.is_(True)
                if escalated
                else or_(t.c.escalated.is_(False), t.c.escalated.is_(None))
            )
        if since is not None:
            query = query.where(t.c.created_at >= since)
        if until is not None:
            query = query.where(t.c.created_at < until)
        if policy is not None:  # the names a call ran with, comma-joined
            padded = literal(",") + t.c.policy + literal(",")
            query = query.where(padded.contains(f",{policy},", autoescape=True))
        if status is not None:
            query = query.where(t.c.status == status)
        if cursor:
            stamp, last_id = decode_cursor(cursor)
            query = query.where(
                or_(t.c.created_at < stamp, and_(t.c.created_at == stamp, t.c.id < last_id))
            )
        with self.engine.connect() as conn:
            rows = [_record(r) for r in conn.execute(query).all()]
        more = len(rows) > limit
        items = tuple(rows[:limit])
        next_cursor = encode_cursor(items[-1].created_at, items[-1].id) if more else None
        return CallPage(items, next_cursor)

    def __iter__(self) -> Iterator[CallRecord]:
        cursor = None
        while True:
            page = self.list(limit=200, cursor=cursor)
            yield from page.items
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    def ping(self) -> bool:
        """Is the database reachable (``/readyz``)?"""
        try:
            with self.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        except Exception:  # any failure means "not ready"
            return False
        return True


def _dumps(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
