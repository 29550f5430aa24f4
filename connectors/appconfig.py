"""The service's whole config: the pipeline's sections plus the connectors' (webhooks,
outbox, routing). One YAML file (``configs/callsense.yaml``) feeds both."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field, model_validator

from callsense.connectors.retention import RetentionConfig
from callsense.connectors.routing_config import RouteTarget, RoutingConfig
from callsense.connectors.webhooks import OutboxSettings, WebhookEndpoint, WebhooksConfig
from callsense.pipeline.config import CallsenseConfig, load_config
from callsense.pipeline.live import LiveConfig

__all__ = ["AppConfig", "load_app_config"]


class AppConfig(CallsenseConfig):
    webhooks: list[WebhookEndpoint] = Field(default_factory=list)
    outbox: OutboxSettings = Field(default_factory=OutboxSettings)
    routing: list[RouteTarget] = Field(default_factory=list)
    routing_default: str | None = None
    retention: RetentionConfig = Field(default_factory=RetentionConfig)
    live: LiveConfig = Field(default_factory=LiveConfig)
    max_calls: int = Field(
        256, ge=1, description="live calls this process takes; beyond, WebSockets get 503"
    )
    max_calls_per_key: int | None = Field(
        None,
        ge=1,
        description="live calls one API key may hold open at once (None: max_calls); "
        "beyond, WebSockets get 429, so one client cannot take every slot",
    )
    max_unstarted_per_key: int | None = Field(
        32,
        ge=1,
        description="connections of one API key that may wait for their call to start (the "
        "start message) at once; beyond, WebSockets get 429: honest clients start within "
        "milliseconds, idle ones would hold slots of max_calls until live.open_timeout_s",
    )

    @model_validator(mode="after")
    def _check_connectors(self) -> AppConfig:
        self.webhooks_config()  # unique endpoint names, a known routing_default
        return self

    def webhooks_config(self) -> WebhooksConfig:
        return WebhooksConfig(
            webhooks=self.webhooks,
            outbox=self.outbox,
            routing=self.routing,
            routing_default=self.routing_default,
        )

    def delivery_endpoints(self) -> list[Any]:
        """The outbox's endpoints: webhooks and routing targets."""
        return self.webhooks_config().endpoints()

    def routing_config(self) -> RoutingConfig:
        return RoutingConfig(routing=self.routing, default_target=self.routing_default)


def load_app_config(
    path: str | Path | None = None, *, model: str | None = None, vad_model: str | None = None
) -> AppConfig:
    return load_config(path, model=model, vad_model=vad_model, schema=AppConfig)
