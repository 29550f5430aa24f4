"""A generic HTTP routing target: the decision and the call's platform ids as JSON to a URL
(a home-grown router, or a platform callsense has no adapter for yet)."""

from __future__ import annotations

import json
from typing import Literal

import httpx

from callsense.connectors.endpoint import RouteContext
from callsense.connectors.routing import Capabilities, RoutingAdapter, TargetBase, env
from callsense.rules.model import Decision

__all__ = ["HttpAdapter", "HttpTarget"]


class HttpTarget(TargetBase):
    kind: Literal["http"]
    url: str
    method: Literal["POST", "PUT", "PATCH"] = "POST"
    bearer_token_env: str | None = None


class HttpAdapter(RoutingAdapter):
    capabilities = Capabilities(transfer=True, attributes=True)
    target: HttpTarget

    def build_request(self, decision: Decision, context: RouteContext) -> httpx.Request:
        headers = {"content-type": "application/json"}
        if self.target.bearer_token_env:
            headers["authorization"] = f"Bearer {env(self.target.bearer_token_env)}"
        return httpx.Request(
            self.target.method,
            self.target.url,
            content=json.dumps(
                {**decision.to_dict(), "context": context.to_dict()}, default=str
            ).encode(),
            headers=headers,
            extensions={"timeout": httpx.Timeout(self.target.timeout_s).as_dict()},
        )
