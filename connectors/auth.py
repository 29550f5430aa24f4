"""API keys: made by ``callsense keys create``, stored only as salted hashes, checked per request.

A key reads ``csk_<id>_<secret>``: the id finds the row without scanning every key, the
secret (32 random bytes) is what is hashed. Keys are long random strings, not passwords,
so one salted SHA-256 is enough (no slow KDF needed to resist guessing); comparison is
constant-time. The database never holds a usable key; a lost key is revoked and replaced.

HTTP clients send the key as ``Authorization: Bearer KEY`` or ``X-API-Key: KEY``;
WebSocket clients may also use ``?api_key=KEY`` because Twilio and browsers cannot set
headers on a WebSocket. Query strings are therefore never logged by the service.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, HTTPException, Request, WebSocket
from sqlalchemy import Column, Engine, Float, String, Table, delete, select, update
from starlette.requests import HTTPConnection

from callsense.connectors.storage import create_schema, metadata
from callsense.core.errors import InputError

__all__ = [
    "ApiKey",
    "KeyStore",
    "Principal",
    "check_ws_key",
    "key_from_connection",
    "require_api_key",
]

KEY_NAME_RE = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_KEY_RE = re.compile(r"csk_([0-9a-f]{12})_([A-Za-z0-9_-]{43})")

keys_table = Table(
    "callsense_api_keys",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("key_id", String(12), nullable=False, unique=True),
    Column("salt", String(32), nullable=False),
    Column("digest", String(64), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("revoked_at", Float, nullable=True),
)


@dataclass(frozen=True, slots=True)
class ApiKey:
    """What ``keys list`` shows: never the key, only its public id."""

    name: str
    key_id: str
    created_at: float
    revoked_at: float | None


def _digest(salt: str, key: str) -> str:
    return hashlib.sha256(bytes.fromhex(salt) + key.encode()).hexdigest()


class KeyStore:
    """The API keys table of one database."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        create_schema(engine)

    def create(self, name: str) -> str:
        """A new key for ``name`` (returned once, stored hashed); a revoked name may be reused."""
        if not KEY_NAME_RE.fullmatch(name):
            raise InputError(f"key name {name!r}: use 1-64 of A-Z a-z 0-9 _ . -")
        key_id = secrets.token_hex(6)
        key = f"csk_{key_id}_{secrets.token_urlsafe(32)}"
        salt = secrets.token_hex(16)
        t = keys_table
        with self.engine.begin() as conn:
            row = conn.execute(select(t.c.revoked_at).where(t.c.name == name)).first()
            if row is not None and row.revoked_at is None:
                raise InputError(f"a key named {name!r} exists; revoke it first")
            conn.execute(delete(t).where(t.c.name == name))
            conn.execute(
                t.insert().values(
                    name=name,
                    key_id=key_id,
                    salt=salt,
                    digest=_digest(salt, key),
                    created_at=time.time(),
                    revoked_at=None,
                )
            )
        return key

    def list(self) -> list[ApiKey]:
        t = keys_table
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(t.c.name, t.c.key_id, t.c.created_at, t.c.revoked_at).order_by(t.c.name)
            ).all()
        return [ApiKey(*row) for row in rows]

    def revoke(self, name: str) -> bool:
        """False if there is no active key of that name."""
        t = keys_table
        with self.engine.begin() as conn:
            result = conn.execute(
                update(t)
                .where(t.c.name == name, t.c.revoked_at.is_(None))
                .values(revoked_at=time.time())
            )
        return bool(result.rowcount)

    def verify(self, key: str) -> str | None:
        """The name of the active key ``key``, or None."""
        m = _KEY_RE.fullmatch(key)
        if m is None:
            return None
        t = keys_table
        with self.engine.connect() as conn:
            row = conn.execute(
                select(t.c.name, t.c.salt, t.c.digest).where(
                    t.c.key_id == m.group(1), t.c.revoked_at.is_(None)
                )
            ).first()
        if row is None:
            return None
        return row.name if hmac.compare_digest(_digest(row.salt, key), row.digest) else None


def key_from_connection(conn: HTTPConnection, *, allow_query: bool = False) -> str | None:
    """The key a client sent: bearer token, then ``X-API-Key``, then (if allowed) the query."""
    auth = conn.headers.get("authorization", "")
    scheme, _, token = auth.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    header = conn.headers.get("x-api-key", "").strip()
    if header:
        return header
    if allow_query:
        return conn.query_params.get("api_key") or None
    return None


def _keys(conn: HTTPConnection) -> KeyStore:
    store: KeyStore = conn.app.state.runtime.keys
    return store


def require_api_key(request: Request) -> str:
    """FastAPI dependency: the caller's key name, or 401 without a valid key."""
    key = key_from_connection(request)
    name = _keys(request).verify(key) if key else None
    if name is None:
        raise HTTPException(
            status_code=401,
            detail="a valid API key is required (Authorization: Bearer KEY or X-API-Key: KEY)",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return name


Principal = Annotated[str, Depends(require_api_key)]
"""The authenticated key name, for routes that want it as a parameter."""


def check_ws_key(websocket: WebSocket) -> bool:
    """For WebSocket routes before ``accept``: headers or ``?api_key=`` (Twilio cannot set
    headers). Close with code 1008 (policy violation) when this is False."""
    key = key_from_connection(websocket, allow_query=True)
    return bool(key) and _keys(websocket).verify(key) is not None
