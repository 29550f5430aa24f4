"""A real callsense service for the API tests: uvicorn on 127.0.0.1, a temporary SQLite
database, an API key, and a webhook receiver (one endpoint accepts, one refuses).

``light_service`` runs without the recognizer (transcripts only, fast); ``model_service``
loads the keyed test model (``keyed_model_dir``) for recordings.
"""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request, Response

from connectors.app import create_app
from connectors.appconfig import AppConfig
from connectors.runtime import Runtime, ServiceSettings
from connectors.webhooks import WebhookEndpoint
from pipeline.config import CacheConfig, load_config
from tests.service.server import running, wait_ready

SECRET = "whsec_" + base64.b64encode(b"k" * 32).decode()


@dataclass
class Service:
    base_url: str
    key: str
    runtime: Runtime
    tmp: Path
    app: FastAPI

    def client(self, key: str | None = "default", **kw: Any) -> httpx.Client:
        headers = (
            {}
            if key is None
            else {"Authorization": f"Bearer {self.key if key == 'default' else key}"}
        )
        return httpx.Client(base_url=self.base_url, headers=headers, timeout=60, **kw)

    def wait_call(self, call_id: str, timeout: float = 120.0) -> dict[str, Any]:
        """Poll ``GET /v1/calls/{id}`` until the job is done or failed."""
        deadline = time.monotonic() + timeout
        with self.client() as c:
            while True:
                body = c.get(f"/v1/calls/{call_id}").json()
                if body["status"] in ("done", "failed") or time.monotonic() > deadline:
                    return body
                time.sleep(0.1)


@dataclass
class Receiver:
    base_url: str
    received: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


@pytest.fixture(scope="session")
def receiver() -> Iterator[Receiver]:
    app = FastAPI()
    box = Receiver("")

    @app.post("/ok")
    async def ok(request: Request) -> Response:
        with box.lock:
            box.received.append(
                {"id": request.headers.get("webhook-id"), "body": (await request.body()).decode()}
            )
        return Response(status_code=204)

    @app.post("/refuse")
    async def refuse() -> Response:
        return Response(status_code=400)

    with running(app) as url:
        box.base_url = url
        yield box


def _service(tmp: Path, cfg: AppConfig, *, load_models: bool, **settings: Any) -> Iterator[Service]:
    app = create_app(
        cfg,
        db_url=f"sqlite:///{tmp}/callsense.db",
        load_models=load_models,
        settings=ServiceSettings(data_dir=tmp / "data", delivery_interval_s=0.2, **settings),
    )
    runtime: Runtime = app.state.runtime
    key = runtime.keys.create("tests")
    with running(app) as url:
        wait_ready(url)
        yield Service(url, key, runtime, tmp, app)


@pytest.fixture(scope="session")
def light_service(
    tmp_path_factory: pytest.TempPathFactory, receiver: Receiver
) -> Iterator[Service]:
    tmp = tmp_path_factory.mktemp("service-light")
    cfg = AppConfig(
        cache=CacheConfig(enabled=False),
        webhooks=[
            WebhookEndpoint(
                name="good", url=f"{receiver.base_url}/ok", secret=SECRET, actions=["escalate"]
            ),
            WebhookEndpoint(
                name="refusing",
                url=f"{receiver.base_url}/refuse?token=abc",
                secret=SECRET,
                actions=["escalate"],
                headers={"X-Token": "hush"},
            ),
        ],
    )
    yield from _service(tmp, cfg, load_models=False, max_upload_mb=1.0)


@pytest.fixture(scope="module")
def model_service(
    tmp_path_factory: pytest.TempPathFactory, keyed_model_dir: Path
) -> Iterator[Service]:
    tmp = tmp_path_factory.mktemp("service-model")
    base = load_config(None, model=str(keyed_model_dir), schema=AppConfig, environ={})
    cfg = base.model_copy(update={"cache": CacheConfig(enabled=True, dir=tmp / "cache")})
    yield from _service(tmp, cfg, load_models=True, max_upload_mb=4.0, scheduler=False)
