"""Who may see what: the API docs (closed unless configured public) and the WebSocket routes'
key check in every form a client can send a key (header, bearer, query)."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from callsense.connectors.appconfig import AppConfig
from callsense.pipeline.config import CacheConfig
from tests.live.audiohook_signing import signed_headers
from tests.live.twilio_signing import signed, twilio_key
from tests.service.conftest import Service, serve

WS_ROUTES = ("/v1/stream", "/v1/twilio", "/v1/audiohook")
DOC_PAGES = ("/docs", "/redoc")


def test_api_docs_are_closed_by_default(light_service: Service) -> None:
    with light_service.client(key=None) as anonymous:
        assert anonymous.get("/openapi.json").status_code == 401
        for page in DOC_PAGES:
            assert anonymous.get(page).status_code == 404
    with light_service.client() as keyed:
        spec = keyed.get("/openapi.json")
        assert spec.status_code == 200
        assert "/v1/calls" in spec.json()["paths"]
        assert keyed.get("/docs").status_code == 404  # a browser page could not send the key


def test_api_docs_can_be_made_public(tmp_path: Path) -> None:
    cfg = AppConfig(cache=CacheConfig(enabled=False))
    with (
        serve(tmp_path, cfg, load_models=False, docs_public=True, scheduler=False) as svc,
        svc.client(key=None) as anonymous,
    ):
        assert "/v1/calls" in anonymous.get("/openapi.json").json()["paths"]
        for page in DOC_PAGES:
            resp = anonymous.get(page)
            assert resp.status_code == 200 and "/openapi.json" in resp.text
        assert anonymous.get("/v1/calls").status_code == 401  # only the docs opened


async def _handshake(url: str, headers: dict[str, str]) -> int:
    """101 when the server accepts the WebSocket, else the HTTP status it refused with."""
    try:
        async with connect(url, additional_headers=headers, open_timeout=10):
            return 101
    except InvalidStatus as exc:
        return exc.response.status_code


@pytest.mark.parametrize("route", WS_ROUTES)
def test_websockets_refuse_missing_wrong_and_revoked_keys_in_every_form(
    light_service: Service, route: str
) -> None:
    revoked = light_service.runtime.keys.create(f"revoked-{route.rsplit('/', 1)[1]}")
    assert light_service.runtime.keys.revoke(f"revoked-{route.rsplit('/', 1)[1]}")
    wrong = "csk_000000000000_" + "x" * 43
    base = light_service.base_url.replace("http://", "ws://") + route

    def forms(key: str) -> list[tuple[str, dict[str, str]]]:
        return [
            (f"{base}?api_key={key}", {}),
            (base, {"Authorization": f"Bearer {key}"}),
            (base, {"X-API-Key": key}),
        ]

    async def run() -> None:
        assert await _handshake(base, {}) == 401
        for key in (wrong, revoked):
            for url, headers in forms(key):
                assert await _handshake(url, headers) == 401, (url, headers)
        valid = light_service.key
        if route == "/v1/twilio":  # Twilio also signs the upgrade, with the key's auth token
            valid = twilio_key(light_service.runtime, "twilio-access")
        if route == "/v1/audiohook":  # Genesys signs the upgrade with the key's client secret
            name = light_service.runtime.keys.verify(valid)
            assert name is not None
            secret = light_service.runtime.keys.create_secret(name)
            signed_upgrade = signed_headers(base, valid, secret, str(uuid.uuid4()))
            assert await _handshake(base, signed_upgrade) == 101
            assert await _handshake(base, {"X-API-Key": valid}) == 401  # the key alone: no
            return
        for url, headers in forms(valid):
            if route == "/v1/twilio":
                headers = {**headers, **signed(url)}
            assert await _handshake(url, headers) == 101, (url, headers)
        # a valid header does not rescue a revoked one, nor the reverse: the header wins
        both = {"Authorization": f"Bearer {revoked}"}
        assert await _handshake(f"{base}?api_key={light_service.key}", both) == 401

    asyncio.run(run())
