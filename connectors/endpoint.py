"""What the outbox delivers to: one ``Endpoint`` protocol for webhooks and routing targets.

The outbox never asks what kind of endpoint it holds. An endpoint says which decisions it
wants, turns one into the message it stores (a webhook renders its payload template, a
route keeps the decision for its platform adapter), how often to retry, and opens a
``Sender`` for a delivery round (a webhook's pooled HTTP client, a route's adapter). A new
kind of destination implements these four things and nothing in the outbox changes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from callsense.connectors.webhooks import RetryPolicy
    from callsense.rules.model import Decision

__all__ = ["AttemptResult", "Endpoint", "Message", "Outcome", "RouteContext", "Sender"]


class Outcome(StrEnum):
    DELIVERED = "delivered"
    RETRY = "retry"
    DEAD = "dead"


@dataclass(frozen=True, slots=True)
class AttemptResult:
    """What one attempt came to; ``error`` is safe to log and store (no body, no secret)."""

    outcome: Outcome
    status: int | None = None
    error: str | None = None
    retry_after_s: float | None = None


@dataclass(frozen=True, slots=True)
class RouteContext:
    """The contact center's own ids of a live call, from its stream (a Twilio CallSid, a
    Genesys conversation and participant): where a ``route`` decision must act. A policy's
    explicit ``params`` win; a recording has none (the call id stands in)."""

    call_sid: str | None = None
    conversation_id: str | None = None
    participant_id: str | None = None
    contact_id: str | None = None

    def to_dict(self) -> dict[str, str]:
        return {k: v for k in self.__slots__ if (v := getattr(self, k)) is not None}

    def merged(self, newer: RouteContext) -> RouteContext:
        """These ids, with ``newer``'s where it has one (a reconnect may bring new ids)."""
        return RouteContext(**{**self.to_dict(), **newer.to_dict()})

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> RouteContext:
        return cls(**{k: str(data[k]) for k in cls.__slots__ if data and data.get(k)})

    def __bool__(self) -> bool:
        return bool(self.to_dict())


@dataclass(frozen=True, slots=True)
class Message:
    """What the outbox stores for one decision and one endpoint, and later sends as is."""

    payload: Any  # JSON-ready
    content_type: str = "application/json"


class Sender(Protocol):
    """One delivery round's connection to an endpoint."""

    async def send(self, webhook_id: str, payload: str, content_type: str) -> AttemptResult:
        """One attempt; never raises: faults become ``RETRY`` or ``DEAD``."""
        ...

    async def aclose(self) -> None: ...


class Endpoint(Protocol):
    """A destination of decisions: a webhook receiver or a contact-center routing target."""

    @property
    def name(self) -> str: ...

    @property
    def retry(self) -> RetryPolicy: ...

    def wants(self, decision: Decision) -> bool: ...

    def message(
        self,
        decision: Mapping[str, Any],
        context: RouteContext,
        *,
        webhook_id: str,
        decision_id: str,
        enqueued_at: str,
    ) -> Message: ...

    def sender(self, concurrency: int) -> Sender: ...
