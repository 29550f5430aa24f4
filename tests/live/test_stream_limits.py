"""Hostile live clients with a valid key: connections that never start or go quiet, one
client holding every slot, a platform timeline that jumps an hour. Each is bounded and
ends only its own session (issue 19, points 4 and 6)."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from callsense.connectors.appconfig import AppConfig
from callsense.pipeline.config import CacheConfig, load_config
from callsense.pipeline.live import LiveConfig
from tests.live.client import AudioHookClient
from tests.live.conftest import LiveService, serving
from tests.live.test_live_ws import start_message

pytestmark = pytest.mark.model


@pytest.fixture(scope="module")
def strict(
    tmp_path_factory: pytest.TempPathFactory, keyed_model_dir: Path
) -> Iterator[LiveService]:
    base = load_config(None, model=str(keyed_model_dir), schema=AppConfig, environ={})
    live = LiveConfig(open_timeout_s=1.0, idle_timeout_s=1.5, max_gap_s=600)
    cfg = base.model_copy(
        update={"cache": CacheConfig(enabled=False), "live": live, "max_calls_per_key": 2}
    )
    with serving(tmp_path_factory.mktemp("strict"), cfg) as service:
        yield service


async def _closed_code(ws: object, within: float) -> tuple[int, list[str]]:
    said: list[str] = []
    try:
        while True:
            said.append(str(await asyncio.wait_for(ws.recv(), within)))  # type: ignore[attr-defined]
    except ConnectionClosed as closed:
        assert closed.rcvd is not None
        return closed.rcvd.code, said


def test_a_connection_that_never_starts_is_closed(strict: LiveService) -> None:
    async def main() -> tuple[int, float]:
        began = time.monotonic()
        async with connect(strict.ws("/v1/stream")) as ws:
            code, said = await _closed_code(ws, 10)
        assert "did not start a call" in json.loads(said[0])["message"]
        return code, time.monotonic() - began

    code, took = asyncio.run(main())
    assert code == 1008 and took < 5


def test_a_call_that_goes_quiet_is_closed_and_keeps_what_it_received(
    strict: LiveService,
) -> None:
    call_id = f"quiet-{uuid.uuid4().hex[:8]}"

    async def main() -> int:
        async with connect(strict.ws("/v1/stream")) as ws:
            await ws.send(start_message(call_id))
            await ws.send(b"\x00\x00" * 2 * 8000)  # one second of stereo silence
            code, _ = await _closed_code(ws, 10)
            return code

    assert asyncio.run(main()) == 1008
    deadline = time.monotonic() + 20
    while (record := strict.runtime.store.get(call_id)) is None or record.status == "running":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert record.error is not None and "sent nothing" in record.error
    assert record.duration_s == pytest.approx(1.0, abs=0.05)


def test_one_key_cannot_take_every_slot(strict: LiveService) -> None:
    other = strict.runtime.keys.create(f"other-{uuid.uuid4().hex[:6]}")

    async def main() -> tuple[int, bool]:
        async with connect(strict.ws("/v1/stream")) as a, connect(strict.ws("/v1/stream")) as b:
            await a.send(start_message(f"cap-a-{uuid.uuid4().hex[:6]}"))
            await b.send(start_message(f"cap-b-{uuid.uuid4().hex[:6]}"))
            with pytest.raises(InvalidStatus) as info:
                async with connect(strict.ws("/v1/stream")):
                    pass
            async with connect(strict.ws("/v1/stream", key=other)) as c:
                await c.send(start_message(f"cap-c-{uuid.uuid4().hex[:6]}"))
                other_ok = True
            return info.value.response.status_code, other_ok

    status, other_ok = asyncio.run(main())
    assert status == 429 and other_ok


def test_a_timeline_jump_beyond_max_gap_ends_only_that_session(strict: LiveService) -> None:
    session_id = str(uuid.uuid4())
    params = {
        "organizationId": "d7934305-0972-4844-938e-9060eef73d05",
        "conversationId": "090eaa2f-72fa-480a-83e0-8667ff89c0ec",
        "participant": {"id": "883efee8-3d6c-4537-b500-6d7ca4b92fa0"},
        "media": [{"type": "audio", "format": "PCMU", "channels": ["external"], "rate": 8000}],
    }

    async def main() -> list[dict[str, object]]:
        async with strict.audiohook(session_id) as ws:
            client = AudioHookClient(ws, session_id)
            await client.send("open", **params)
            said = [await client.recv()]
            client.position = 3600.0
            await client.send("discarded", start="PT0S", discarded="PT3600S")
            said.append(await client.recv())
            await client.send("close", reason="error")
            said.append(await client.recv())
            return said

    opened, disconnect, closed = asyncio.run(main())
    assert opened["type"] == "opened"
    assert disconnect["type"] == "disconnect" and closed["type"] == "closed"
    assert "max_gap_s" in str(disconnect["parameters"])
    deadline = time.monotonic() + 20
    while (record := strict.runtime.store.get(session_id)) is None or record.status == "running":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert record.duration_s is not None and record.duration_s < 1
