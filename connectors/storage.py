"""Where callsense keeps what must survive a crash: one SQLAlchemy 2 engine per database URL.

SQLite (a local file, the default) runs in WAL mode with real ``BEGIN IMMEDIATE``
transactions so that several processes (``callsense serve`` and a CLI ``webhooks deliver``)
can share the file without "database is locked" surprises; PostgreSQL is used when the URL
says so, through psycopg 3.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, MetaData, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from callsense.core.errors import ConfigError

__all__ = [
    "DB_URL_ENV",
    "DEFAULT_DB_URL",
    "UPGRADES",
    "create_schema",
    "make_engine",
    "metadata",
    "normalize_db_url",
    "resolve_db_url",
]

DB_URL_ENV = "CALLSENSE_DB_URL"
DEFAULT_DB_URL = "sqlite:///callsense.db"

metadata = MetaData()
"""Every callsense table registers here, so one ``create_schema`` makes them all."""

UPGRADES: list[Callable[[Engine], None]] = []
"""Steps that bring a database made by an older callsense up to date (each idempotent);
the module owning a table registers its own."""


def create_schema(engine: Engine) -> None:
    """Create missing tables, then run the upgrades (idempotent)."""
    metadata.create_all(engine, checkfirst=True)
    for upgrade in UPGRADES:
        upgrade(engine)


def resolve_db_url(url: str | None = None) -> str:
    """An explicit URL wins, then ``$CALLSENSE_DB_URL``, then ``callsense.db`` in the cwd."""
    return url or os.environ.get(DB_URL_ENV) or DEFAULT_DB_URL


def normalize_db_url(url: str) -> str:
    """``postgresql://`` means psycopg 3 here (SQLAlchemy would otherwise pick psycopg2)."""
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise ConfigError(f"not a database URL: {exc}", field="db_url") from None
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.get_backend_name() not in ("sqlite", "postgresql"):
        raise ConfigError(
            f"unsupported database {parsed.get_backend_name()!r}; use sqlite:///FILE or "
            "postgresql://USER@HOST/DB",
            field="db_url",
        )
    return parsed.render_as_string(hide_password=False)


def make_engine(url: str | None = None, **kwargs: Any) -> Engine:
    """Engine for ``url`` (see ``resolve_db_url``); SQLite files get WAL and a busy timeout."""
    full = normalize_db_url(resolve_db_url(url))
    parsed = make_url(full)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            _check_sqlite_dir(Path(parsed.database).expanduser())
        connect_args = {"check_same_thread": False, "timeout": 30.0}
        connect_args.update(kwargs.pop("connect_args", {}))
        engine = create_engine(full, connect_args=connect_args, **kwargs)
        _sqlite_pragmas(engine)
        return engine
    kwargs.setdefault("pool_pre_ping", True)
    return create_engine(full, **kwargs)


def _check_sqlite_dir(path: Path) -> None:
    """A database file may be new, its directory may not. Creating the directory would
    start an empty database (no API keys, no outbox) wherever a typo points, and the real
    one would look lost; the directory is a deployment decision, so say what is missing."""
    parent = path.parent
    if not parent.is_dir():
        what = "is not a directory" if parent.exists() else "does not exist"
        raise ConfigError(
            f"the SQLite database {path} cannot be opened: its directory {parent} {what}; "
            "fix the URL (--db, outbox.db_url, $CALLSENSE_DB_URL) or create the directory",
            field="db_url",
        )


def _sqlite_pragmas(engine: Engine) -> None:
    """WAL + ``BEGIN IMMEDIATE``: writers queue on the busy timeout instead of failing.

    pysqlite's own transaction handling starts transactions lazily and as DEFERRED, which
    lets two processes both read and then collide on upgrading to a write lock; we take
    over BEGIN ourselves (the recipe SQLAlchemy documents for pysqlite).
    """

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")
