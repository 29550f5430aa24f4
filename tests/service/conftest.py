"""A real callsense service for the API tests: uvicorn on 127.0.0.1, a temporary SQLite
database, an API key, and a webhook receiver (one endpoint accepts, one refuses).

``light_service`` runs without the recognizer (transcripts only, fast); ``model_service``
loads the keyed test model (``keyed_model_dir``) for recordings.

The receiver checks every webhook it gets with the ``standardwebhooks`` library and the
secret the service is configured with, as a real receiver would: a delivery that does not
verify is answered 401 and kept out of ``received``, and fails the test it arrived during
(``_webhooks_verify``), or the session if it arrives after the last test.
"""

from __future__ import annotations

import base64
import contextlib
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request, Response
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from callsense.connectors.app import create_app
from callsense.connectors.appconfig import AppConfig
from callsense.connectors.runtime import Runtime
from callsense.connectors.service_settings import ServiceSettings
from callsense.connectors.webhooks import WebhookEndpoint
from callsense.pipeline.config import CacheConfig, load_config
from callsense.rules.backends import Matcher
from tests import policy_engines
from tests.service.server import running, wait_ready

SECRET = "whsec_" + base64.b64encode(b"k" * 32).decode()

policy_engine = policy_engines.policy_engine  # each rules backend in turn (engine_service)


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
    """Webhooks the service sent: ``received`` holds those whose Standard Webhooks signature
    verified with ``secret`` (``id``, ``body`` as text, ``payload`` as verified JSON);
    ``rejected`` the others (``path``, ``id``, ``error``)."""

    base_url: str
    secret: str
    received: list[dict[str, Any]] = field(default_factory=list)
    rejected: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    _checked: int = 0

    def take(self, path: str, headers: dict[str, str], body: bytes) -> bool:
        """Verify one delivery; record it; whether it verified."""
        try:
            payload = Webhook(self.secret).verify(body, headers)
        except WebhookVerificationError as exc:
            with self.lock:
                self.rejected.append(
                    {"path": path, "id": headers.get("webhook-id"), "error": str(exc)}
                )
            return False
        if path == "/ok":
            with self.lock:
                self.received.append(
                    {"id": headers["webhook-id"], "body": body.decode(), "payload": payload}
                )
        return True

    def assert_all_verified(self) -> None:
        """Fail on any delivery rejected since the last call (each is reported once)."""
        with self.lock:
            new, self._checked = self.rejected[self._checked :], len(self.rejected)
        assert not new, f"webhooks whose signature does not verify with the service's secret: {new}"


@contextlib.contextmanager
def webhook_receiver(secret: str) -> Iterator[Receiver]:
    """A receiver on 127.0.0.1: ``/ok`` accepts verified webhooks (204), ``/refuse`` answers
    400 to all; both answer 401 to a webhook whose signature does not verify."""
    app = FastAPI()
    box = Receiver("", secret)

    @app.post("/ok")
    async def ok(request: Request) -> Response:
        verified = box.take("/ok", dict(request.headers), await request.body())
        return Response(status_code=204 if verified else 401)

    @app.post("/refuse")
    async def refuse(request: Request) -> Response:
        verified = box.take("/refuse", dict(request.headers), await request.body())
        return Response(status_code=400 if verified else 401)

    with running(app) as url:
        box.base_url = url
        yield box


@pytest.fixture(scope="session")
def receiver() -> Iterator[Receiver]:
    """The receiver of ``light_service``'s webhooks, verifying them with ``SECRET``."""
    with webhook_receiver(SECRET) as box:
        yield box
        box.assert_all_verified()  # deliveries that came in after the last test


@pytest.fixture(autouse=True)
def _webhooks_verify(request: pytest.FixtureRequest) -> Iterator[None]:
    """Every service test that runs with the receiver fails on a webhook that did not verify."""
    yield
    if "receiver" in request.fixturenames:
        box: Receiver = request.getfixturevalue("receiver")
        box.assert_all_verified()


@contextlib.contextmanager
def serve(tmp: Path, cfg: AppConfig, *, load_models: bool, **settings: Any) -> Iterator[Service]:
    """A service with ``cfg`` on 127.0.0.1, its database and data under ``tmp``."""
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


def light_config(receiver: Receiver, **update: Any) -> AppConfig:
    """No recognizer cache; webhooks to ``receiver``'s accepting and refusing endpoints."""
    return AppConfig(
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
        **update,
    )


@pytest.fixture(scope="session")
def light_service(
    tmp_path_factory: pytest.TempPathFactory, receiver: Receiver
) -> Iterator[Service]:
    tmp = tmp_path_factory.mktemp("service-light")
    with serve(tmp, light_config(receiver), load_models=False, max_upload_mb=1.0) as service:
        yield service


@pytest.fixture(scope="module")
def engine_service(
    tmp_path_factory: pytest.TempPathFactory, receiver: Receiver, policy_engine: str
) -> Iterator[Service]:
    """``light_service`` with ``policy_engine:`` set to each rules backend in turn, for the
    tests that assert decisions; its calls and policies are the module's own. No scheduler:
    there is one per process (connectors.scheduler), and light_service's SLA tests use it."""
    tmp = tmp_path_factory.mktemp(f"service-{policy_engine}")
    cfg = light_config(receiver, policy_engine=policy_engine)
    with serve(tmp, cfg, load_models=False, max_upload_mb=1.0, scheduler=False) as service:
        yield service


def policy_matcher(service: Service, policy: str | None = None) -> Matcher:
    """The matcher of the engine that the service's calls naming ``policy`` (None: the active
    policies) run on: compiled once per policy set and kept open while the service runs."""
    runtime = service.runtime
    return runtime.policy_engine(runtime.policies.set_for(policy)).matcher


@pytest.fixture(scope="module")
def model_service(
    tmp_path_factory: pytest.TempPathFactory, keyed_model_dir: Path
) -> Iterator[Service]:
    tmp = tmp_path_factory.mktemp("service-model")
    base = load_config(None, model=str(keyed_model_dir), schema=AppConfig, environ={})
    cfg = base.model_copy(update={"cache": CacheConfig(enabled=True, dir=tmp / "cache")})
    with serve(tmp, cfg, load_models=True, max_upload_mb=4.0, scheduler=False) as service:
        yield service
