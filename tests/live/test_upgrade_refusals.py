"""A live route that cannot take a call says so at the HTTP upgrade (never accept, then
drop): 503 with Retry-After while the models are not ready, so the platform retries."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from callsense.connectors.app import create_app
from callsense.connectors.appconfig import AppConfig
from callsense.connectors.service_settings import ServiceSettings
from callsense.pipeline.config import load_config
from tests.service.server import running


def test_live_routes_refuse_at_the_upgrade_while_models_are_not_ready(tmp_path: Path) -> None:
    missing = tmp_path / "no-model-here"
    cfg = load_config(None, model=str(missing), schema=AppConfig, environ={})
    app = create_app(
        cfg,
        db_url=f"sqlite:///{tmp_path}/callsense.db",
        settings=ServiceSettings(data_dir=tmp_path / "data", scheduler=False),
    )
    key = app.state.runtime.keys.create("refusals")

    async def attempt(url: str) -> httpx.Headers | None:
        with pytest.raises(InvalidStatus) as info:
            async with connect(url):
                pass
        response = info.value.response
        assert response.status_code == 503
        return httpx.Headers(dict(response.headers.raw_items()))

    with running(app) as base:
        assert app.state.runtime.models_ready.wait(60) and app.state.runtime.load_error
        assert httpx.get(f"{base}/readyz").status_code == 503
        ws = base.replace("http://", "ws://")
        for path in ("/v1/stream", "/v1/twilio", "/v1/audiohook"):
            headers = asyncio.run(attempt(f"{ws}{path}?api_key={key}"))
            assert headers is not None and headers["retry-after"] == "5"
