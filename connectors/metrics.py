"""Prometheus metrics of one running service: what operators graph and alert on.

Each ``Metrics`` owns its registry (not prometheus-client's global one), so several apps in
one process (tests) count apart. Labels are bounded: rule ids come from policies, outcomes
and stages from fixed sets; never a call id or any text.
"""

from __future__ import annotations

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

__all__ = ["CONTENT_TYPE", "Metrics"]

CONTENT_TYPE = CONTENT_TYPE_LATEST

_STAGE_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)


class Metrics:
    """The named metrics; the live helper moves ``live_sessions``, jobs move the rest."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.calls_total = Counter(
            "callsense_calls",
            "Calls finished, by final status (done, failed).",
            ["status"],
            registry=r,
        )
        self.utterances_total = Counter(
            "callsense_utterances", "Utterances analyzed (batch and live).", registry=r
        )
        self.decisions_total = Counter(
            "callsense_decisions", "Policy decisions, by rule id.", ["rule"], registry=r
        )
        self.webhook_deliveries_total = Counter(
            "callsense_webhook_deliveries",
            "Webhook delivery attempts, by outcome (delivered, retry, dead).",
            ["outcome"],
            registry=r,
        )
        self.stage_seconds = Histogram(
            "callsense_stage_seconds",
            "Time spent per stage of a call (transcribe, analyze, store, predict).",
            ["stage"],
            buckets=_STAGE_BUCKETS,
            registry=r,
        )
        self.live_sessions = Gauge(
            "callsense_live_sessions", "Live streaming sessions open now.", registry=r
        )
        self.jobs_queued = Gauge(
            "callsense_jobs_queued", "Call jobs waiting for the worker.", registry=r
        )

    def render(self) -> bytes:
        """The registry in Prometheus text exposition format."""
        return generate_latest(self.registry)
