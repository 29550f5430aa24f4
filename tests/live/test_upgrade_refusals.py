"""A live route that cannot take a call says so at the HTTP upgrade (never accept, then
drop): 503 with Retry-After while the models are not ready, so the platform retries."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from callsense.connectors.app import create_app
from callsense.connectors.appconfig import AppConfig
from callsense.connectors.service_settings import ServiceSettings
from callsense.pipeline.config import load_config
from tests.live.audiohook_signing import signed_headers
from tests.live.twilio_signing import signed, twilio_key
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
    twilio = twilio_key(app.state.runtime, "twilio-refusals")  # Twilio signs its upgrades

    async def attempt(url: str, headers: dict[str, str] | None = None) -> httpx.Headers | None:
        with pytest.raises(InvalidStatus) as info:
            async with connect(url, additional_headers=headers or {}):
                pass
        response = info.value.response
        assert response.status_code == 503
        return httpx.Headers(dict(response.headers.raw_items()))

    with running(app) as base:
        assert app.state.runtime.models_ready.wait(60) and app.state.runtime.load_error
        assert httpx.get(f"{base}/readyz").status_code == 503
        ws = base.replace("http://", "ws://")
        headers = asyncio.run(attempt(f"{ws}/v1/stream?api_key={key}"))
        assert headers is not None and headers["retry-after"] == "5"
        secret = app.state.runtime.keys.create_secret("refusals")  # Genesys signs too
        url = f"{ws}/v1/audiohook"
        headers = asyncio.run(attempt(url, signed_headers(url, key, secret, str(uuid.uuid4()))))
        assert headers is not None and headers["retry-after"] == "5"
        url = f"{ws}/v1/twilio?api_key={twilio}"
        headers = asyncio.run(attempt(url, signed(url)))
        assert headers is not None and headers["retry-after"] == "5"
