"""``/v1/webhooks``: the configured endpoints (secrets masked) and the dead letters."""

from __future__ import annotations

import datetime as dt
from typing import Annotated
from urllib.parse import urlsplit, urlunsplit

from fastapi import APIRouter, Query
from pydantic import BaseModel

from callsense.connectors.outbox_rows import OutboxMessage
from callsense.connectors.routers.common import PROBLEM_RESPONSES, Problem, RuntimeDep
from callsense.connectors.webhooks import WebhookEndpoint

__all__ = ["router"]

router = APIRouter(prefix="/v1/webhooks", tags=["webhooks"], responses=PROBLEM_RESPONSES)

MASK = "********"


class EndpointOut(BaseModel):
    name: str
    url: str
    secret: str
    actions: list[str] | None
    rules: list[str] | None
    template: str
    method: str
    headers: dict[str, str]
    timeout_s: float
    max_attempts: int


class MessageOut(BaseModel):
    """One outbox message (its payload is not shown: it may hold personal data)."""

    webhook_id: str
    decision_id: str
    endpoint: str
    status: str
    attempts: int
    last_status: int | None
    last_error: str | None
    call_id: str
    action: str
    rule: str
    created_at: dt.datetime
    updated_at: dt.datetime


class Retried(BaseModel):
    webhook_id: str
    status: str


def _mask_url(url: str) -> str:
    """Credentials in a URL (``https://user:pass@host``) and its query are masked."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        netloc = f"{MASK}@{netloc.rsplit('@', 1)[1]}"
    return urlunsplit((parts.scheme, netloc, parts.path, MASK if parts.query else "", ""))


def _endpoint(ep: WebhookEndpoint) -> EndpointOut:
    return EndpointOut(
        name=ep.name,
        url=_mask_url(ep.url),
        secret=MASK,
        actions=ep.actions,
        rules=ep.rules,
        template=ep.template,
        method=ep.method,
        headers={k: MASK for k in ep.headers},
        timeout_s=ep.timeout_s,
        max_attempts=ep.retry.attempts,
    )


def _message(m: OutboxMessage) -> MessageOut:
    return MessageOut(
        webhook_id=m.webhook_id,
        decision_id=m.decision_id,
        endpoint=m.endpoint,
        status=m.status,
        attempts=m.attempts,
        last_status=m.last_status,
        last_error=m.last_error,
        call_id=m.call_id,
        action=m.action,
        rule=m.rule,
        created_at=dt.datetime.fromtimestamp(m.created_at, dt.UTC),
        updated_at=dt.datetime.fromtimestamp(m.updated_at, dt.UTC),
    )


@router.get("", response_model=list[EndpointOut])
def list_endpoints(runtime: RuntimeDep) -> list[EndpointOut]:
    return [_endpoint(ep) for ep in runtime.cfg.webhooks]


@router.get("/messages", response_model=list[MessageOut])
def list_messages(
    runtime: RuntimeDep,
    status: Annotated[str | None, Query(pattern="^(pending|delivered|dead)$")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[MessageOut]:
    """Outbox messages, newest first."""
    return [_message(m) for m in runtime.outbox.messages(status, limit)]


@router.get("/failed", response_model=list[MessageOut])
def list_failed(
    runtime: RuntimeDep, limit: Annotated[int, Query(ge=1, le=1000)] = 100
) -> list[MessageOut]:
    """Dead letters: deliveries that gave up (retry them once the receiver is fixed)."""
    return [_message(m) for m in runtime.outbox.failed(limit)]


@router.post("/failed/{webhook_id}/retry", response_model=Retried)
def retry_failed(webhook_id: str, runtime: RuntimeDep) -> Retried:
    """Put a dead letter back in line with a fresh attempt budget."""
    if len(webhook_id) > 64 or not runtime.outbox.retry(webhook_id):
        raise Problem(404, "Not Found", "no dead letter with that webhook id")
    runtime.wake_delivery()
    return Retried(webhook_id=webhook_id, status="pending")
