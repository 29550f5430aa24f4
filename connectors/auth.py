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

A key has a role: ``admin`` (the default) may do everything, ``viewer`` (``keys create NAME
--role viewer``: a wallboard, a supervisor who watches) may read and watch but change
nothing. ``require_api_key``, the one dependency every keyed router has, enforces it: a
viewer's request with a method other than GET/HEAD/OPTIONS gets 403 unless its route is
marked ``changes_nothing`` (checking a policy draft: validate, test, diff). New routes are
therefore closed to viewers until someone decides otherwise.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, Literal, TypeVar, get_args

from fastapi import Depends, HTTPException, Request
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
    "ROLES",
    "ApiKey",
    "Caller",
    "KeyStore",
    "Principal",
    "Role",
    "changes_nothing",
    "key_from_connection",
    "require_api_key",
]

KEY_NAME_RE = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_KEY_RE = re.compile(r"csk_([0-9a-f]{12})_([A-Za-z0-9_-]{43})")

Role = Literal["admin", "viewer"]
ROLES: tuple[Role, ...] = get_args(Role)
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

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
    Column("role", String(16), nullable=False, server_default="admin"),  # see the doc
)


def upgrade(engine: Engine) -> None:
    """Give a key table made before client secrets or roles those columns; keys made before
    roles keep the power they had (admin)."""
    columns = {c["name"] for c in inspect(engine).get_columns(keys_table.name)}
    added = {
        "client_secret": "VARCHAR(64)",
        "role": "VARCHAR(16) NOT NULL DEFAULT 'admin'",
    }
    with engine.begin() as conn:
        for name, kind in added.items():
            if name not in columns:
                conn.execute(text(f"ALTER TABLE {keys_table.name} ADD COLUMN {name} {kind}"))


UPGRADES.append(upgrade)


@dataclass(frozen=True, slots=True)
class ApiKey:
    """What ``keys list`` shows: never the key, only its public id."""

    name: str
    key_id: str
    created_at: float
    revoked_at: float | None
    has_secret: bool = False  # a client secret is set (never shown after ``keys secret``)
    role: Role = "admin"


@dataclass(frozen=True, slots=True)
class Caller:
    """Who sent a request: the key's name (what audits record) and its role."""

    name: str
    role: Role

    @property
    def may_change(self) -> bool:
        return self.role == "admin"


def _role(value: object) -> Role:
    """A stored role; anything unexpected gets the lesser one (fail closed)."""
    return "admin" if value == "admin" else "viewer"


def _digest(salt: str, key: str) -> str:
    return hashlib.sha256(bytes.fromhex(salt) + key.encode()).hexdigest()


class KeyStore:
    """The API keys table of one database."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        create_schema(engine)

    def create(self, name: str, role: Role = "admin") -> str:
        """A new key for ``name`` (returned once, stored hashed); a revoked name may be reused."""
        if not KEY_NAME_RE.fullmatch(name):
            raise InputError(f"key name {name!r}: use 1-64 of A-Z a-z 0-9 _ . -")
        if role not in ROLES:
            raise InputError(f"role {role!r}: use one of {', '.join(ROLES)}")
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
                    role=role,
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
                    t.c.role,
                ).order_by(t.c.name)
            ).all()
        return [ApiKey(n, k, c, r, bool(s), _role(role)) for n, k, c, r, s, role in rows]

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

    def identify(self, key: str) -> Caller | None:
        """The name and role of the active key ``key``, or None."""
        row = self._active_row(key)
        return None if row is None else Caller(row.name, _role(row.role))

    def role(self, name: str) -> Role | None:
        """The role of the active key named ``name`` (None: no such key)."""
        t = keys_table
        with self.engine.connect() as conn:
            found = conn.execute(
                select(t.c.role).where(t.c.name == name, t.c.revoked_at.is_(None))
            ).scalar()
        return None if found is None else _role(found)

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
                select(t.c.name, t.c.salt, t.c.digest, t.c.client_secret, t.c.role).where(
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


_CHANGES_NOTHING = "__callsense_changes_nothing__"
F = TypeVar("F", bound=Callable[..., Any])


def changes_nothing(endpoint: F) -> F:
    """Mark a route whose method is not GET but which changes nothing (it validates, tests
    or computes): viewer keys may call it. Put it below the ``@router.post`` line."""
    setattr(endpoint, _CHANGES_NOTHING, True)
    return endpoint


def require_api_key(request: Request) -> str:
    """FastAPI dependency: the caller's key name; 401 without a valid key, 403 for a viewer
    key on a route that may change something (see the module doc)."""
    key = key_from_connection(request)
    caller = _keys(request).identify(key) if key else None
    if caller is None:
        raise HTTPException(
            status_code=401,
            detail="a valid API key is required (Authorization: Bearer KEY or X-API-Key: KEY)",
            headers={"WWW-Authenticate": "Bearer"},
        )
    endpoint = request.scope.get("endpoint")
    harmless = getattr(endpoint, _CHANGES_NOTHING, False)
    if not caller.may_change and request.method not in SAFE_METHODS and not harmless:
        raise HTTPException(
            status_code=403,
            detail=f"the key {caller.name!r} is a viewer key: it can watch and read, "
            "not change anything (use an admin key)",
        )
    return caller.name


Principal = Annotated[str, Depends(require_api_key)]
"""The authenticated key name, for routes that want it as a parameter."""
