"""The one settings model of ``callsense serve`` and the errors that ask a client to come
back later (models loading, a full queue): both are what the service's edges answer with."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from callsense.core.errors import RetryableError

__all__ = ["NotReadyError", "QueueFullError", "ServiceSettings"]


class ServiceSettings(BaseModel):
    """Limits and places of ``callsense serve`` (its command-line options)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    data_dir: Path = Field(Path("callsense-data"), description="uploaded audio lives here")
    max_upload_mb: float = Field(200.0, gt=0, description="larger uploads get 413")
    queue_size: int = Field(64, ge=1, description="call jobs waiting; beyond: 503")
    metrics_public: bool = Field(False, description="serve /metrics without an API key")
    docs_public: bool = Field(
        False,
        description="serve /docs, /redoc and /openapi.json without an API key; otherwise "
        "/openapi.json needs a key and the browser pages (which cannot send one) are off",
    )
    delivery_interval_s: float = Field(2.0, gt=0, description="outbox polling interval")
    scheduler: bool = Field(True, description="run APScheduler jobs (SLA, retention)")
    shutdown_timeout_s: float = Field(30.0, ge=0, description="wait for the running job")
    ray_config: Path | None = Field(
        None,
        description="ray.yaml: this process is a gateway and the model runs on the Ray Serve "
        "tier (`callsense ray serve-model`); None: the model is loaded here",
    )
    gateway_id: str = Field(
        default_factory=socket.gethostname,
        pattern=r"^[A-Za-z0-9_.:-]{1,64}$",
        description="names this process's live calls in a shared database, so that after a "
        "crash it recovers its own calls only (set it when several gateways share a host)",
    )
    platform_signatures: Literal["required", "off"] = Field(
        "required",
        description="required: a platform's live connection (Genesys AudioHook, Twilio) must "
        "carry a valid signature of that platform, made with the API key's client secret; "
        "off: only the API key is checked (local development only)",
    )

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)


class NotReadyError(RetryableError):
    """Models are still loading (or failed to): try again later."""


class QueueFullError(RetryableError):
    """The job queue is full: try again later."""
