"""The ``routing:`` config and the one table of platforms that can move a call.

A target's ``kind`` picks its platform module (``connectors.platforms``); adding a platform
means one module there and one line in ``RouteTarget`` and ``ADAPTERS``.
"""

from __future__ import annotations

from typing import Annotated

import httpx
from pydantic import BaseModel, ConfigDict, Field

from callsense.connectors.endpoint import RouteContext
from callsense.connectors.platforms.amazon_connect import AmazonConnectAdapter, AmazonConnectTarget
from callsense.connectors.platforms.genesys import GenesysAdapter, GenesysTarget
from callsense.connectors.platforms.http import HttpAdapter, HttpTarget
from callsense.connectors.platforms.twilio import TwilioAdapter, TwilioTarget
from callsense.connectors.routing import RoutingAdapter
from callsense.core.errors import InputError
from callsense.rules.model import Decision

__all__ = ["ADAPTERS", "RouteTarget", "RoutingConfig", "adapter_for", "route_decision"]

RouteTarget = Annotated[
    TwilioTarget | AmazonConnectTarget | GenesysTarget | HttpTarget, Field(discriminator="kind")
]

ADAPTERS: dict[str, type[RoutingAdapter]] = {
    "twilio": TwilioAdapter,
    "amazon_connect": AmazonConnectAdapter,
    "genesys": GenesysAdapter,
    "http": HttpAdapter,
}


class RoutingConfig(BaseModel):
    """The ``routing:`` key of ``configs/callsense.yaml``: named targets."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    routing: list[RouteTarget] = Field(default_factory=list)
    default_target: str | None = None


def adapter_for(target: BaseModel) -> RoutingAdapter:
    return ADAPTERS[target.kind](target)  # type: ignore[attr-defined]


def route_decision(
    decision: Decision,
    config: RoutingConfig,
    client: httpx.Client | None = None,
    context: RouteContext | None = None,
) -> int:
    """Carry out one ``route`` decision on its target (``params.target`` or the default)."""
    params = decision.params
    name = params.get("target") or config.default_target
    if name is None and len(config.routing) == 1:
        name = config.routing[0].name
    targets = {t.name: t for t in config.routing}
    if name not in targets:
        raise InputError(f"route target {name!r} is not configured (have {sorted(targets)})")
    adapter = adapter_for(targets[name])
    context = context or RouteContext()
    if client is not None:
        return adapter.send(decision, context, client)
    with httpx.Client() as own:
        return adapter.send(decision, context, own)
