"""The wall's routes: ``GET /v1/alerts``, ``POST /v1/alerts/{id}/ack`` and ``WS /v1/wall``.

``WS /v1/wall?api_key=KEY`` (any role) sends, as JSON text messages:

    {"type": "snapshot", "seq", "now", "role", "key", "calls": [call...], "alerts": [alert...]}
    {"type": "update", "seq", "items": [{"type": "call", "call"} | {"type": "ended", "call_id"}
                                        | {"type": "alert", "alert"}]}

A snapshot comes first, and again (with ``"resent": true``) whenever the page fell too far
behind; an update carries the latest state of each call or alert that changed since the
last message (``seq`` counts changes: the page shows it, tests and the bench read it). The
client sends nothing; times are Unix seconds (``now``: the server's clock, for elapsed
times). Acknowledging is ``POST /v1/alerts/{id}/ack`` with an admin key: the hub pushes
the acknowledged alert to every page.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, WebSocket
from pydantic import BaseModel

from callsense.connectors.auth import Caller, Principal, key_from_connection
from callsense.connectors.live.session import CLOSE_POLICY, close_quietly, refuse
from callsense.connectors.routers.common import PROBLEM_RESPONSES, Problem
from callsense.connectors.wall.alerts import AlertState, AlreadyAcknowledged, StoredAlert
from callsense.connectors.wall.hub import Subscription, Wall

__all__ = ["AlertOut", "router", "ws_router"]

router = APIRouter(prefix="/v1/alerts", tags=["alerts"], responses=PROBLEM_RESPONSES)
ws_router = APIRouter(tags=["alerts"])

SEND_TIMEOUT_S = 10.0  # a page that takes longer to read one message is dropped
_Name = Annotated[str | None, Query(max_length=255)]


class AlertOut(BaseModel):
    """An alert: a live call's decision, and who acknowledged it when."""

    id: str
    call_id: str
    policy: str
    rule: str
    action: str
    priority: str | None
    queue: str | None
    reason: str | None
    at: float
    fired_at: dt.datetime
    state: str
    acked_by: str | None
    acked_at: dt.datetime | None


def _out(alert: StoredAlert) -> AlertOut:
    def when(t: float | None) -> dt.datetime | None:
        return None if t is None else dt.datetime.fromtimestamp(t, dt.UTC)

    return AlertOut.model_validate(
        {**alert.record(), "fired_at": when(alert.fired_at), "acked_at": when(alert.acked_at)}
    )


def _wall(request: Request | WebSocket) -> Wall:
    wall: Wall = request.app.state.wall
    return wall


@router.get("", response_model=list[AlertOut])
async def list_alerts(
    request: Request,
    state: AlertState = "open",
    policy: _Name = None,
    priority: Annotated[str | None, Query(pattern="^(low|normal|high|urgent)$")] = None,
    queue: _Name = None,
    call_id: _Name = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[AlertOut]:
    """Newest first; filters combine."""
    alerts = await asyncio.to_thread(
        _wall(request).alerts.list, state=state, policy=policy, priority=priority,
        queue=queue, call_id=call_id, limit=limit,
    )  # fmt: skip
    return [_out(a) for a in alerts]


@router.post("/{alert_id}/ack", response_model=AlertOut)
async def acknowledge(alert_id: str, request: Request, who: Principal) -> AlertOut:
    """Acknowledge an alert as the calling key (stored with the time, logged); 409 if
    someone did first."""
    try:
        alert = await _wall(request).acknowledge(alert_id, who)
    except AlreadyAcknowledged as exc:
        first = exc.alert
        raise Problem(
            409, "Conflict",
            f"already acknowledged by {first.acked_by} at "
            f"{dt.datetime.fromtimestamp(first.acked_at or 0, dt.UTC).isoformat()}",
        ) from None  # fmt: skip
    if alert is None:
        raise Problem(404, "Not Found", "no such alert")
    return _out(alert)


def _caller(websocket: WebSocket) -> Caller | None:
    key = key_from_connection(websocket, allow_query=True)
    keys = websocket.app.state.runtime.keys
    return keys.identify(key) if key else None


@ws_router.websocket("/v1/wall")
async def wall_socket(websocket: WebSocket) -> None:
    """Calls in progress and alerts, pushed as they change (see the module doc)."""
    caller = await asyncio.to_thread(_caller, websocket)
    if caller is None:
        await refuse(websocket, 401, "a valid API key is required", CLOSE_POLICY)
        return
    await websocket.accept()
    wall = _wall(websocket)
    sub = wall.hub.subscribe()
    news = asyncio.create_task(_send_news(websocket, wall, sub, caller))
    gone = asyncio.create_task(_until_disconnect(websocket))
    code, reason = 1000, ""
    try:
        done, _ = await asyncio.wait({news, gone}, return_when=asyncio.FIRST_COMPLETED)
        if news in done and isinstance(news.exception(), TimeoutError):
            code, reason = CLOSE_POLICY, "client too slow"
    finally:
        wall.hub.unsubscribe(sub)
        for task in (news, gone):
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
        await close_quietly(websocket, code, reason)


async def _send_news(websocket: WebSocket, wall: Wall, sub: Subscription, who: Caller) -> None:
    about = {"role": who.role, "key": who.name}
    await _send(websocket, await wall.snapshot(**about))
    while True:
        items = await sub.take()
        if items is None:
            message = await wall.snapshot(resent=True, **about)
        else:
            message = {"type": "update", "seq": wall.hub.seq, "items": items}
        await _send(websocket, message)


async def _send(websocket: WebSocket, message: dict[str, Any]) -> None:
    text = json.dumps(message, ensure_ascii=False, separators=(",", ":"))
    await asyncio.wait_for(websocket.send_text(text), SEND_TIMEOUT_S)


async def _until_disconnect(websocket: WebSocket) -> None:
    """The page sends nothing; reading is how its going away is noticed."""
    while (await websocket.receive())["type"] != "websocket.disconnect":
        pass
