"""A ``route`` decision made mid-call reaches the contact center: a Genesys AudioHook call
whose policy routes angry callers, against a loopback server playing Genesys Cloud's API.

The route must name the conversation and participant the AudioHook ``open`` message gave,
and it leaves through the outbox while the call goes on.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from callsense.connectors.app import create_app
from callsense.connectors.appconfig import AppConfig
from callsense.connectors.platforms.genesys import GenesysTarget
from callsense.connectors.runtime import Runtime
from callsense.connectors.service_settings import ServiceSettings
from callsense.pipeline.config import CacheConfig, load_config
from tests.connectors.conftest import Receiver
from tests.connectors.helpers import ROUTE_ON_THREE_ANGRY
from tests.live.client import AudioHookClient, Pacer
from tests.live.conftest import CallAudio, LiveService
from tests.service.server import running, wait_ready

pytestmark = pytest.mark.model


@pytest.fixture
def genesys() -> Iterator[Receiver]:
    api = Receiver()
    yield api
    api.stop()


@pytest.fixture
def routing_service(
    tmp_path: Path,
    keyed_model_dir: Path,
    genesys: Receiver,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[LiveService]:
    monkeypatch.setenv("GENESYS_ACCESS_TOKEN", "gc-token")
    policy = tmp_path / "routing.yaml"
    policy.write_text(ROUTE_ON_THREE_ANGRY)
    base = load_config(None, model=str(keyed_model_dir), schema=AppConfig, environ={})
    target = GenesysTarget(name="genesys", kind="genesys", base_url=genesys.url)
    cfg = base.model_copy(
        update={"cache": CacheConfig(enabled=False), "policies": [policy], "routing": [target]}
    )
    app = create_app(
        cfg,
        db_url=f"sqlite:///{tmp_path}/callsense.db",
        settings=ServiceSettings(
            data_dir=tmp_path / "data", delivery_interval_s=0.2, scheduler=False
        ),
    )
    runtime: Runtime = app.state.runtime
    key = runtime.keys.create("route-tests")
    with running(app) as url:
        wait_ready(url)
        yield LiveService(url, key, runtime, app)


def test_a_mid_call_route_patches_the_genesys_participant(
    routing_service: LiveService, genesys: Receiver, call_audio: CallAudio
) -> None:
    session_id = "5d1a6a7e-0c55-4b7b-9d43-3c1e2f0a9b10"
    stereo = {"type": "audio", "format": "PCMU", "channels": ["external", "internal"], "rate": 8000}
    routed_at: list[float] = []

    async def main() -> float:
        async with routing_service.audiohook(session_id) as ws:
            client = AudioHookClient(ws, session_id)
            await client.send(
                "open",
                organizationId="org-1",
                conversationId="conv-9",
                participant={"id": "part-7", "ani": "+15550100"},
                media=[stereo],
                language="en-US",
            )
            assert (await client.recv())["type"] == "opened"
            pacer = Pacer(speed=4.0)
            for i in range(0, len(call_audio.mulaw8k), 320):  # 20 ms of stereo PCMU
                await ws.send(call_audio.mulaw8k[i : i + 320])
                if not routed_at and genesys.requests:
                    routed_at.append(pacer.sent_s)
                await pacer.tick()
            await client.send("close", reason="end")
            await client.recv()
            return pacer.sent_s

    sent_s = asyncio.run(main())
    deadline = time.monotonic() + 10
    while not genesys.requests:  # delivered by the service's outbox sender
        assert time.monotonic() < deadline, "the route never reached the platform"
        time.sleep(0.05)
    (patch,) = genesys.requests
    assert patch.method == "PATCH"
    assert patch.path == "/api/v2/conversations/calls/conv-9/participants/part-7/attributes"
    assert patch.headers["authorization"] == "Bearer gc-token"
    assert json.loads(patch.body)["attributes"] == {
        "callsense_action": "route",
        "callsense_rule": "angry-to-supervisors",
        "callsense_queue": "supervisors",
    }
    assert routed_at and routed_at[0] < sent_s  # it arrived while the call was still streaming
    stored = routing_service.runtime.store.decisions(session_id)
    assert [(d["rule"], d["action"]) for d in stored] == [("angry-to-supervisors", "route")]
