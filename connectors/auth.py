"""API keys: made by ``callsense keys create``, stored only as salted hashes, checked per request.

A key reads ``csk_<id>_<secret>``: the id finds the row without scanning every key, the
secret (32 random bytes) is what is hashed. Keys are long random strings, not passwords,
so one salted SHA-256 is enough (no slow KDF needed to resist guessing); comparison is
constant-time. The database never holds a usable key; a lost key is revoked and replaced.

HTTP clients send the key as ``Authorization: Bearer KEY`` or ``X-API-Key: KEY``;
WebSocket clients may also use ``?api_key=KEY`` because Twilio and browsers cannot set
headers on a WebSocket. Query strings are therefore never logged by the service.

A key may also have a client secret (``callsense keys secret NAME``): the HMAC key a platform
signs its connections with (Genesys AudioHook's "client secret"). Unlike the key it is stored
as issued, base64, because verifying an HMAC needs the secret itself; whoever can read the
database can forge signatures, so the database is protected like the secret. Revoking the
key erases its secret.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import time
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request, WebSocket
from sqlalchemy import (
    Column,
    Engine,
    Float,
    Row,
    String,
    Table,
    delete,
    inspect,
    select,
    text,
    update,
)
from starlette.requests import HTTPConnection

from callsense.connectors.storage import UPGRADES, create_schema, metadata
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
    Column("client_secret", String(64), nullable=True),  # base64 of 32 bytes; see the doc
)


def upgrade(engine: Engine) -> None:
    """Give a key table made before client secrets its ``client_secret`` column."""
    columns = {c["name"] for c in inspect(engine).get_columns(keys_table.name)}
    if "client_secret" not in columns:
        with engine.begin() as conn:
            conn.execute(
                text(f"ALTER TABLE {keys_table.name} ADD COLUMN client_secret VARCHAR(64)")
            )


UPGRADES.append(upgrade)


@dataclass(frozen=True, slots=True)
class ApiKey:
    """What ``keys list`` shows: never the key, only its public id."""

    name: str
    key_id: str
    created_at: float
    revoked_at: float | None
    has_secret: bool = False  # a client secret is set (never shown after ``keys secret``)


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
                select(
                    t.c.name,
                    t.c.key_id,
                    t.c.created_at,
                    t.c.revoked_at,
                    t.c.client_secret.is_not(None),
                ).order_by(t.c.name)
            ).all()
        return [ApiKey(n, k, c, r, bool(s)) for n, k, c, r, s in rows]

    def revoke(self, name: str) -> bool:
        """False if there is no active key of that name. Its client secret goes with it."""
        t = keys_table
        with self.engine.begin() as conn:
            result = conn.execute(
                update(t)
                .where(t.c.name == name, t.c.revoked_at.is_(None))
                .values(revoked_at=time.time(), client_secret=None)
            )
        return bool(result.rowcount)

    def create_secret(self, name: str) -> str:
        """A new client secret (32 random bytes, base64) for the active key ``name``,
        returned once; it replaces the key's old secret, so signers must switch to it."""
        secret = base64.b64encode(secrets.token_bytes(32)).decode()
        self.set_secret(name, secret)
        return secret

    def verify(self, key: str) -> str | None:
        """The name of the active key ``key``, or None."""
        row = self._active_row(key)
        return None if row is None else row.name

    def secret_for(self, api_key: str) -> str | None:
        """The base64 client secret of the active key ``api_key``; None when the key is
        unknown or revoked, or has no secret."""
        row = self._active_row(api_key)
        return None if row is None else row.client_secret

    def secrets(self) -> list[tuple[str, str]]:
        """Name and secret of every active key that has a secret: a platform that signs its
        upgrade but cannot send the API key (Twilio drops a stream URL's query) is told by
        which key's secret verifies its signature."""
        t = keys_table
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(t.c.name, t.c.client_secret).where(
                    t.c.revoked_at.is_(None), t.c.client_secret.is_not(None)
                )
            ).all()
        return [(row.name, row.client_secret) for row in rows]

    def _active_row(self, key: str) -> Row[Any] | None:
        """The row of the active key ``key`` (its hash checked), or None."""
        m = _KEY_RE.fullmatch(key)
        if m is None:
            return None
        t = keys_table
        with self.engine.connect() as conn:
            row = conn.execute(
                select(t.c.name, t.c.salt, t.c.digest, t.c.client_secret).where(
                    t.c.key_id == m.group(1), t.c.revoked_at.is_(None)
                )
            ).first()
        if row is None or not hmac.compare_digest(_digest(row.salt, key), row.digest):
            return None
        return row

    def set_secret(self, name: str, value: str) -> None:
        """Give the active key ``name`` a secret the platform issued rather than one made
        here: Twilio signs with the account's auth token, so that is the key's secret (a key
        holds one secret: use a key per platform). It replaces the key's old secret."""
        if not re.fullmatch(r"[\x21-\x7e]{1,64}", value):
            raise InputError("a secret is 1-64 printable ASCII characters, without spaces")
        t = keys_table
        with self.engine.begin() as conn:
            result = conn.execute(
                update(t)
                .where(t.c.name == name, t.c.revoked_at.is_(None))
                .values(client_secret=value)
            )
        if not result.rowcount:
            raise InputError(f"no active key named {name!r}")


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
