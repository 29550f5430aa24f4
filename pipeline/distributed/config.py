"""``ray.yaml``: where the Ray cluster is, how the model tier scales, how archives are split.

Kept apart from ``callsense.yaml`` so the same pipeline config runs with ``engine: local``
(the default, no Ray installed) and on a cluster; only this file says how it is spread.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from callsense.core.errors import InputError
from callsense.core.yamlsource import validate

__all__ = [
    "ArchiveSettings",
    "AutoscalingSettings",
    "BatchSettings",
    "RayConfig",
    "ReplicaResources",
    "load_ray_config",
    "resolve_factory",
]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AutoscalingSettings(_Section):
    """Serve's autoscaling: replicas follow the number of utterances in flight."""

    min_replicas: int = Field(1, ge=0)
    max_replicas: int = Field(4, ge=1)
    target_ongoing_requests: float = Field(
        8.0, gt=0, description="utterances in flight per replica before another is added"
    )

    @model_validator(mode="after")
    def _ordered(self) -> AutoscalingSettings:
        if self.max_replicas < self.min_replicas:
            raise ValueError("max_replicas must be >= min_replicas")
        return self


class ReplicaResources(_Section):
    """What one model replica (or one archive actor) reserves on its node."""

    num_cpus: float = Field(1.0, ge=0)
    num_gpus: float = Field(0.0, ge=0)


class BatchSettings(_Section):
    """``@serve.batch`` across calls: utterances of different calls share one forward pass."""

    max_batch_size: int = Field(8, ge=1)
    batch_wait_timeout_s: float = Field(
        0.01, ge=0, description="how long a lone utterance waits for company"
    )


class ArchiveSettings(_Section):
    """``analyze --engine ray``: the Ray Data actor pools."""

    recognizer_actors: int = Field(2, ge=1, description="actors holding VAD + recognizer")
    analyzer_actors: int = Field(1, ge=1, description="actors running policies/dialogue/TTS")
    batch_size: int = Field(4, ge=1, description="calls per map_batches batch")
    resources: ReplicaResources = Field(
        default_factory=ReplicaResources, description="per recognizer actor"
    )
    analyzer_num_cpus: float = Field(
        0.5, ge=0, description="per analyzer actor (policies are light; leave cores to models)"
    )


class RayConfig(_Section):
    """The whole ``ray.yaml``."""

    address: str | None = Field(
        None,
        description="'auto', 'ray://host:10001' or host:port of a running cluster; "
        "unset starts a local Ray for this process",
    )
    namespace: str = "callsense"
    app_name: str = "callsense-model"
    deployment: str = "Recognizer"
    num_replicas: int | None = Field(None, ge=1, description="fixed replica count")
    autoscaling: AutoscalingSettings | None = None
    ray_actor_options: ReplicaResources = Field(default_factory=ReplicaResources)
    max_ongoing_requests: int = Field(
        8,
        ge=1,
        description="per replica; about batch.max_batch_size: a larger value lets a burst "
        "of utterances pile onto one replica while another idles (2 replicas of the int8 "
        "model: 0.89 scaling at 8, 0.50 at 32)",
    )
    batch: BatchSettings = Field(default_factory=BatchSettings)
    handle_timeout_s: float = Field(
        10.0, gt=0, description="one handle call's deadline; the retry gets another"
    )
    retries: int = Field(1, ge=0, le=3, description="handle calls are at-most-once; retry n×")
    dedup_window_s: float = Field(
        60.0, ge=0, description="a replica answers a repeated utterance id from memory"
    )
    recognizer_factory: str | None = Field(
        None,
        description="'module:callable' taking a RecognizerConfig; default: "
        "callsense.pipeline.recognizer:build_recognizer (the class pipeline/ uses locally)",
    )
    archive: ArchiveSettings = Field(default_factory=ArchiveSettings)

    @model_validator(mode="after")
    def _one_scaling_mode(self) -> RayConfig:
        if self.num_replicas is not None and self.autoscaling is not None:
            raise ValueError("set either num_replicas or autoscaling, not both")
        return self

    def replica_options(self) -> dict[str, Any]:
        """Keyword arguments for ``Deployment.options``."""
        opts: dict[str, Any] = {
            "name": self.deployment,
            "ray_actor_options": self.ray_actor_options.model_dump(exclude_defaults=True)
            | {"num_cpus": self.ray_actor_options.num_cpus},
            "max_ongoing_requests": self.max_ongoing_requests,
        }
        if self.autoscaling is not None:
            opts["autoscaling_config"] = self.autoscaling.model_dump()
        else:
            opts["num_replicas"] = self.num_replicas or 1
        return opts


def load_ray_config(path: str | Path | None) -> RayConfig:
    """``ray.yaml`` validated with ``file:line: field`` errors; defaults without a file."""
    if path is None:
        return RayConfig()
    return validate(RayConfig, path)


def resolve_factory(spec: str | None) -> Callable[[Any], Any]:
    """The recognizer factory a ``module:callable`` string names (default: build_recognizer)."""
    if spec is None:
        from callsense.pipeline.recognizer import build_recognizer

        return build_recognizer
    module, sep, attr = spec.partition(":")
    if not sep or not module or not attr:
        raise InputError(f"recognizer_factory: expected 'module:callable' (got {spec!r})")
    try:
        target = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as exc:
        raise InputError(f"recognizer_factory: cannot import {spec!r}: {exc}") from None
    if not callable(target):
        raise InputError(f"recognizer_factory: {spec!r} is not callable")
    return target
