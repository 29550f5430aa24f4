"""Forgetting calls: one call on request (API DELETE, ``callsense purge``), old ones by age.

Everything of a call goes: its rows, its audio file, its result-cache entries and the
webhook payloads already delivered. Pending and dead-lettered webhooks stay: they are
promises to other systems, and ``callsense webhooks failed`` still shows them.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Engine, delete, exists, select

from callsense.connectors.calls_store import CallStore, calls_table
from callsense.connectors.outbox_rows import decisions_table, outbox_table
from callsense.pipeline.cache import ResultCache

__all__ = ["Purger", "RetentionConfig"]

log = logging.getLogger(__name__)


class RetentionConfig(BaseModel):
    """``retention:`` in YAML: how long calls (audio, transcripts, decisions) are kept."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    days: float | None = Field(30.0, gt=0, description="null keeps calls forever")
    interval_s: float = Field(3600.0, gt=0, description="how often the clean-up runs")


@dataclass(slots=True)
class Purger:
    """Removes calls from one database, its audio directory and the result cache."""

    engine: Engine
    audio_dir: Path | None = None
    cache: ResultCache | None = None

    def purge_call(self, call_id: str) -> bool:
        record = CallStore(self.engine).delete(call_id)
        if self.cache is not None:
            self.cache.remove_call(call_id)
        self._purge_outbox(call_id)
        if record is None:
            return False
        if record.audio_path:
            path = Path(record.audio_path)
            # only files callsense stored itself: never a path outside its audio directory
            if self.audio_dir is not None and path.resolve().is_relative_to(
                self.audio_dir.resolve()
            ):
                path.unlink(missing_ok=True)
        log.info("call %s: purged", call_id)
        return True

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
