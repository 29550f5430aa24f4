"""Routing targets as outbox endpoints: a ``route`` decision is committed to the outbox with
the webhooks, then carried out by its platform adapter (``connectors.platforms``).

So a route survives what a webhook survives: a platform that is briefly down (5xx, 429,
network) is retried, a crash between the decision and the request is picked up by the
next deliverer, and a refused request (4xx, missing credentials) becomes a dead letter
that ``callsense webhooks failed`` lists. Routes move live calls, so they retry quickly
(0.5, 1, 2 s) and give up after four attempts: a transfer minutes late is no transfer.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from callsense.connectors.endpoint import AttemptResult, Message, Outcome, RouteContext
from callsense.connectors.routing import RoutingAdapter
from callsense.connectors.routing_config import RouteTarget, RoutingConfig, adapter_for
from callsense.connectors.webhooks import RetryPolicy
from callsense.core.errors import CallsenseError, RetryableError
from callsense.rules.model import Decision

__all__ = ["ROUTE_PREFIX", "ROUTE_RETRY", "RouteEndpoint", "route_endpoints"]

ROUTE_PREFIX = "route:"
ROUTE_RETRY = RetryPolicy(schedule_s=[0.5, 1.0, 2.0])


@dataclass(frozen=True, slots=True)
class RouteEndpoint:
    """One routing target in the outbox; it receives the ``route`` decisions aimed at it."""

    target: RouteTarget
    default: bool  # takes the route decisions that name no target
    retry: RetryPolicy = ROUTE_RETRY
    adapter: RoutingAdapter = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "adapter", adapter_for(self.target))

    @property
    def name(self) -> str:
        """The outbox's endpoint name; cannot clash with a webhook's (no ':' allowed there)."""
        return ROUTE_PREFIX + self.target.name

    def wants(self, decision: Decision) -> bool:
        if decision.action != "route":
            return False
        named = decision.params.get("target")
        return named == self.target.name if named else self.default

    def message(
        self,
        decision: Mapping[str, Any],
        context: RouteContext,
        *,
        webhook_id: str,
        decision_id: str,
        enqueued_at: str,
    ) -> Message:
        """The decision itself and the call's platform ids, for the adapter to act on."""
        return Message({"decision": dict(decision), "context": context.to_dict()})

    def sender(self, concurrency: int) -> RouteEndpoint:
        return self

    async def send(self, webhook_id: str, payload: str, content_type: str) -> AttemptResult:
        """One attempt; never raises: faults become ``RETRY`` or ``DEAD`` with a safe message."""
        stored = json.loads(payload)
        try:
            status = await asyncio.to_thread(
                self._send,
                Decision.from_dict(stored["decision"]),
                RouteContext.from_dict(stored.get("context")),
            )
        except RetryableError as exc:
            return AttemptResult(Outcome.RETRY, None, str(exc))
        except CallsenseError as exc:  # request refused, bad params, credentials missing
            return AttemptResult(Outcome.DEAD, None, str(exc))
        return AttemptResult(Outcome.DELIVERED, status)

    async def aclose(self) -> None:
        """Nothing held between rounds (each attempt opens its own client)."""

    def _send(self, decision: Decision, context: RouteContext) -> int:
        with httpx.Client(follow_redirects=False) as client:
            return self.adapter.send(decision, context, client)


def route_endpoints(config: RoutingConfig) -> list[RouteEndpoint]:
    """One endpoint per target; the default one (or the only one) takes untargeted routes."""
    default = config.default_target
    if default is None and len(config.routing) == 1:
        default = config.routing[0].name
    return [RouteEndpoint(t, default=t.name == default, retry=ROUTE_RETRY) for t in config.routing]
