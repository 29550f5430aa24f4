"""The HTTP API on a real uvicorn server, transcripts only (no recognizer needed)."""

from __future__ import annotations

import json
import logging
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from connectors.outbox import decisions_table, outbox_table
from tests.service.conftest import Service

PUBLIC = {"/healthz", "/readyz"}

ANGRY = "<|en|><|ANGRY|><|Speech|><|withitn|>This is absurd, I want a refund."
CALM = "<|en|><|NEUTRAL|><|Speech|><|withitn|>Thank you for waiting."


def utterances(call_id: str, emotions: list[str]) -> list[dict[str, Any]]:
    """Customer turns 2 s long, an agent turn between each (records in transcribe shape)."""
    out: list[dict[str, Any]] = []
    t = 0.0
    for emotion in emotions:
        raw = ANGRY if emotion == "ANGRY" else CALM
        out.append({"call_id": call_id, "channel": 0, "speaker": "customer", "start": t,
                    "end": t + 2.0, "raw": raw})
        out.append({"call_id": call_id, "channel": 1, "speaker": "agent", "start": t + 2.1,
                    "end": t + 3.0, "raw": CALM})
        t += 3.0
    return out


def post_transcript(svc: Service, call_id: str, emotions: list[str], **extra: Any) -> httpx.Response:
    with svc.client() as c:
        return c.post("/v1/calls", json={"call_id": call_id,
                                         "utterances": utterances(call_id, emotions), **extra})


def test_every_protected_route_refuses_a_missing_wrong_or_revoked_key(light_service: Service) -> None:
    app_routes = [(m, p) for m, p in _routes(light_service) if p not in PUBLIC]
    paths = {p for _, p in app_routes}
    assert {"/v1/calls", "/v1/calls/{call_id}", "/v1/policies/{name}", "/v1/policies/diff",
            "/v1/webhooks/failed", "/api/predict", "/metrics"} <= paths
    revoked = light_service.runtime.keys.create("revoked-later")
    assert light_service.runtime.keys.revoke("revoked-later")
    for key in (None, "csk_000000000000_" + "x" * 43, revoked, "Bearer"):
        with light_service.client(key=key) as c:
            for method, path in app_routes:
                url = path.replace("{call_id}", "c1").replace("{name}", "default")
                url = url.replace("{webhook_id}", "msg_1")
                resp = c.request(method, url)
                assert resp.status_code == 401, (method, url, key, resp.text)
                assert resp.headers["content-type"] == "application/problem+json"
                assert resp.headers["www-authenticate"] == "Bearer"
    with light_service.client(key=None) as c:
        for path in PUBLIC:
            assert c.get(path).status_code == 200
        # X-API-Key works as well as a bearer token
        assert c.get("/v1/calls", headers={"X-API-Key": light_service.key}).status_code == 200


def _routes(svc: Service) -> list[tuple[str, str]]:
    """(method, path) of every documented route of the running app."""
    paths = svc.app.openapi()["paths"]
    return [(m.upper(), p) for p, ops in paths.items() for m in ops]
