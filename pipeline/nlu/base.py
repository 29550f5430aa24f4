"""What every intent hook returns and promises.

A hook turns one customer utterance's text into an ``Intent`` or ``None``. Hooks talk to
models and servers that fail; they signal that by raising ``HookFailure`` (or anything
else), and the chain in ``pipeline.nlu.chain`` turns it into a ``HookError`` record so a
call never dies because an NLU server did.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar, Literal

__all__ = [
    "ErrorKind",
    "HookCapabilities",
    "HookError",
    "HookFailure",
    "Intent",
    "IntentHook",
]

ErrorKind = Literal[
    "timeout", "connect", "http_status", "bad_response", "circuit_open", "unavailable", "error"
]


@dataclass(frozen=True, slots=True)
class Intent:
    """One classified intent; ``hook`` names the configured hook that produced it."""

    name: str
    confidence: float
    hook: str


@dataclass(frozen=True, slots=True)
class HookError:
    """A hook failed on one utterance; the utterance then simply has no intent from it.

    ``message`` never contains transcript text (it may end up in logs and summaries).
    """

    hook: str
    call_id: str
    kind: ErrorKind
    message: str


@dataclass(frozen=True, slots=True)
class HookCapabilities:
    """What a hook can do, so the chain can skip it instead of asking in vain.

    ``languages`` None means any language; ``network`` hooks may be slow or down.
    """

    languages: frozenset[str] | None = None
    network: bool = False
    needs_model: bool = False

    def accepts(self, lang: str | None) -> bool:
        return self.languages is None or lang is None or lang in self.languages


class HookFailure(Exception):
    """Raised by a hook for an expected failure; ``kind`` goes into the ``HookError``."""

    def __init__(self, kind: ErrorKind, message: str) -> None:
        super().__init__(message)
        self.kind: ErrorKind = kind
        self.message = message


class IntentHook(ABC):
    """Base of every NLU provider: one method, one capabilities record."""

    capabilities: ClassVar[HookCapabilities] = HookCapabilities()

    def __init__(self, name: str) -> None:
        self.name = name

    @property
    def caps(self) -> HookCapabilities:
        """Per-instance capabilities (a hook's config may narrow its languages)."""
        return self.capabilities

    @abstractmethod
    def classify(self, text: str, lang: str | None) -> Intent | None:
        """Return the utterance's intent, ``None`` if none, or raise ``HookFailure``."""

    def close(self) -> None:  # noqa: B027 - optional hook for hooks holding connections
        """Release connections or models; the chain calls it once at shutdown."""
