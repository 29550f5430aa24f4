"""Named policies the service runs: the configured files, plus texts PUT through the API.

Stored policies live in the database (not a directory): several ``callsense serve``
processes on one PostgreSQL see the same set, and a name can never become a path. A
stored policy with the name of a configured file (its stem: ``default`` for
``configs/policies/default.yaml``) replaces that file. The *active set* — what a call that
names no policy runs — is every configured file not replaced, plus every stored policy
marked active; it is validated as a whole before a change is accepted, so two policies
sharing a rule id are refused at PUT time, not at the next call.

A configured policy is named by its file name alone (``default.yaml``) in everything this
store gives out: API answers, error messages and a call's audit go to clients, who have no
business knowing where the service keeps its configuration. ``configured`` keeps the paths.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from sqlalchemy import Boolean, Column, Engine, Float, String, Table, Text, delete, select

from callsense.connectors.storage import create_schema, metadata
from callsense.core.errors import ConfigError, InputError
from callsense.rules.loader import PolicySet, load_policy_texts

__all__ = ["POLICY_NAME_RE", "PolicyDoc", "PolicyStore", "policy_file_label"]

POLICY_NAME_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")

policies_table = Table(
    "callsense_policies",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("text", Text, nullable=False),
    Column("active", Boolean, nullable=False),
    Column("updated_at", Float, nullable=False),
)


def policy_file_label(name: str) -> str:
    """The file name errors cite for a stored policy (``policies/NAME.yaml:LINE: ...``)."""
    return f"policies/{name}.yaml"


@dataclass(frozen=True, slots=True)
class PolicyDoc:
    name: str
    text: str
    source: Literal["config", "stored"]
    active: bool
    file: str
    updated_at: float | None = None


class PolicyStore:
    """Configured policy files and stored policy texts, by name."""

    def __init__(self, engine: Engine, configured: Sequence[Path] = ()) -> None:
        self.engine = engine
        self.configured: dict[str, Path] = {}
        for path in configured:
            self.configured.setdefault(Path(path).stem, Path(path))
        create_schema(engine)

    @staticmethod
    def check_name(name: str) -> str:
        if not POLICY_NAME_RE.fullmatch(name):
            raise InputError(f"policy name {name!r}: use 1-64 of A-Z a-z 0-9 _ -")
        return name

    def _stored(self) -> dict[str, PolicyDoc]:
        t = policies_table
        with self.engine.connect() as conn:
            rows = conn.execute(select(t).order_by(t.c.name)).all()
        return {
            r.name: PolicyDoc(
                r.name, r.text, "stored", bool(r.active), policy_file_label(r.name), r.updated_at
            )
            for r in rows
        }

    def _config_doc(self, name: str) -> PolicyDoc:
        path = self.configured[name]
        try:
            body = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.reason if isinstance(exc, UnicodeDecodeError) else exc.strerror
            message = f"cannot read: {reason or type(exc).__name__}"
            raise ConfigError(message, file=path.name) from None
        return PolicyDoc(name, body, "config", True, path.name)

    def all(self) -> list[PolicyDoc]:
        """Every policy by name; a stored one hides the configured file of its name."""
        stored = self._stored()
        docs = [self._config_doc(n) for n in self.configured if n not in stored]
        docs.extend(stored.values())
        return sorted(docs, key=lambda d: d.name)

    def get(self, name: str) -> PolicyDoc | None:
        self.check_name(name)
        stored = self._stored()
        if name in stored:
            return stored[name]
        if name in self.configured:
            return self._config_doc(name)
        return None

    def active(self) -> list[PolicyDoc]:
        return [d for d in self.all() if d.active]

    def active_set(self) -> PolicySet:
        """The policies of a call that names none (``ConfigError`` if there are none)."""
        docs = self.active()
        if not docs:
            raise ConfigError("no active policies: PUT one or configure policies:")
        return load_policy_texts([(d.text, d.file) for d in docs])

    def set_for(self, name: str | None) -> PolicySet:
        """The active set (``name`` None) or the one named policy; ``KeyError`` if unknown."""
        if name is None:
            return self.active_set()
        doc = self.get(name)
        if doc is None:
            raise KeyError(name)
        return load_policy_texts([(doc.text, doc.file)])

    def validate(self, name: str, text: str, *, active: bool = True) -> PolicySet:
        """Check ``text`` alone, then (if it would be active) together with the active set."""
        self.check_name(name)
        file = policy_file_label(name)
        alone = load_policy_texts([(text, file)])
        if not active:
            return alone
        others = [(d.text, d.file) for d in self.active() if d.name != name]
        load_policy_texts([*others, (text, file)])
        return alone

    def put(self, name: str, text: str, *, active: bool = True) -> PolicyDoc:
        """Validate and store; ``ConfigError`` lists every ``file:line: field: message``."""
        self.validate(name, text, active=active)
        t = policies_table
        now = time.time()
        with self.engine.begin() as conn:
            conn.execute(delete(t).where(t.c.name == name))
            conn.execute(t.insert().values(name=name, text=text, active=active, updated_at=now))
        return PolicyDoc(name, text, "stored", active, policy_file_label(name), now)

    def delete(self, name: str) -> bool:
        """Forget a stored policy (a configured file of that name shows again)."""
        self.check_name(name)
        t = policies_table
        with self.engine.begin() as conn:
            return bool(conn.execute(delete(t).where(t.c.name == name)).rowcount)
