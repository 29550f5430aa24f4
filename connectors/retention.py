"""Forgetting calls: one call on request (API DELETE, ``callsense purge``), old ones by age.

Everything of a call goes: its rows, its audio file, its result-cache entries and the
webhook payloads already delivered. Pending and dead-lettered webhooks stay: they are
promises to other systems, and ``callsense webhooks failed`` still shows them.

The files live where the serving process was told (``--data-dir``, ``cache.dir``,
``$CALLSENSE_CACHE_DIR``, its home directory), which a ``callsense purge`` run from another
shell, directory or account does not know. So each ``serve`` records its audio and cache
directories in the database (``record_locations``) and ``purge`` removes from those too,
and says which it could not reach instead of reporting a purge that left files behind.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Column, Engine, Float, String, Table, Text, delete, exists, select

from callsense.connectors.calls_store import CallStore, calls_table
from callsense.connectors.outbox_rows import decisions_table, outbox_table
from callsense.connectors.storage import metadata
from callsense.pipeline.cache import ResultCache

__all__ = [
    "Location",
    "Purger",
    "RetentionConfig",
    "record_locations",
    "recorded_locations",
    "unreachable",
]

log = logging.getLogger(__name__)

locations_table = Table(
    "callsense_locations",
    metadata,
    Column("gateway_id", String(64), primary_key=True),
    Column("kind", String(16), primary_key=True),  # "audio" or "cache"
    Column("path", Text, nullable=False),
    Column("updated_at", Float, nullable=False),
)


@dataclass(frozen=True, slots=True)
class Location:
    """A directory where one serving process keeps call files."""

    gateway_id: str
    kind: Literal["audio", "cache"]
    path: Path

    def __str__(self) -> str:
        what = "audio directory" if self.kind == "audio" else "result cache"
        return f"{what} {self.path} (gateway {self.gateway_id})"


def record_locations(
    engine: Engine, gateway_id: str, *, audio_dir: Path, cache_dir: Path | None
) -> None:
    """Store where this process keeps audio and cached transcripts (absolute paths),
    replacing what the same gateway recorded before; ``cache_dir`` None: no cache."""
    t = locations_table
    t.create(engine, checkfirst=True)
    now = time.time()
    rows = [{"kind": "audio", "path": str(audio_dir.resolve())}]
    if cache_dir is not None:
        rows.append({"kind": "cache", "path": str(cache_dir.expanduser().resolve())})
    with engine.begin() as conn:
        conn.execute(delete(t).where(t.c.gateway_id == gateway_id))
        conn.execute(t.insert(), [{**r, "gateway_id": gateway_id, "updated_at": now} for r in rows])


def recorded_locations(engine: Engine) -> list[Location]:
    """Every directory a serving process recorded in this database."""
    t = locations_table
    t.create(engine, checkfirst=True)
    with engine.connect() as conn:
        rows = conn.execute(select(t).order_by(t.c.gateway_id, t.c.kind)).all()
    return [Location(r.gateway_id, r.kind, Path(r.path)) for r in rows]


def unreachable(locations: Sequence[Location]) -> list[Location]:
    """The locations this process cannot remove files from (missing here, or no access)."""
    return [
        loc
        for loc in locations
        if not (loc.path.is_dir() and os.access(loc.path, os.W_OK | os.X_OK))
    ]


class RetentionConfig(BaseModel):
    """``retention:`` in YAML: how long calls (audio, transcripts, decisions) are kept."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    days: float | None = Field(30.0, gt=0, description="null keeps calls forever")
    interval_s: float = Field(3600.0, gt=0, description="how often the clean-up runs")


@dataclass(slots=True)
class Purger:
    """Removes calls from one database, its audio directory and the result cache; and from
    ``more_audio_dirs`` and ``more_caches`` (the directories other processes recorded)."""

    engine: Engine
    audio_dir: Path | None = None
    cache: ResultCache | None = None
    more_audio_dirs: tuple[Path, ...] = field(default=())
    more_caches: tuple[ResultCache, ...] = field(default=())

    def purge_call(self, call_id: str) -> bool:
        record = CallStore(self.engine).delete(call_id)
        for cache in (self.cache, *self.more_caches):
            if cache is not None:
                cache.remove_call(call_id)
        self._purge_outbox(call_id)
        if record is None:
            return False
        if record.audio_path:
            for path in self._audio_files(Path(record.audio_path)):
                path.unlink(missing_ok=True)
        log.info("call %s: purged", call_id)
        return True

    def _audio_files(self, stored: Path) -> list[Path]:
        """Where a call's audio may be: the stored path, if inside an audio directory
        (never a file outside one), and its name in each directory another process
        recorded (a relative stored path was relative to that process's directory)."""
        dirs = [d for d in (self.audio_dir, *self.more_audio_dirs) if d is not None]
        found = [stored] if any(stored.resolve().is_relative_to(d.resolve()) for d in dirs) else []
        if stored.name not in ("", ".", ".."):
            found += [d / stored.name for d in self.more_audio_dirs]
        return found

    def purge_older_than(self, seconds: float, *, now: float | None = None) -> list[str]:
        """Purge calls created more than ``seconds`` ago; returns their ids."""
        cutoff = (time.time() if now is None else now) - seconds
        with self.engine.connect() as conn:
            ids = list(
                conn.execute(select(calls_table.c.id).where(calls_table.c.created_at < cutoff))
                .scalars()
                .all()
            )
        removed = [call_id for call_id in ids if self.purge_call(call_id)]
        if removed:
            log.info("retention: purged %d call(s)", len(removed))
        return removed

    def _purge_outbox(self, call_id: str) -> None:
        o, d = outbox_table, decisions_table
        ids = select(d.c.id).where(d.c.call_id == call_id).scalar_subquery()
        with self.engine.begin() as conn:
            conn.execute(delete(o).where(o.c.status == "delivered", o.c.decision_id.in_(ids)))
            conn.execute(
                delete(d).where(d.c.call_id == call_id, ~exists().where(o.c.decision_id == d.c.id))
            )
