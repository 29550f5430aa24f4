"""A gateway's `max_calls`: the call beyond it is refused (503), the others are unaffected."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import pytest
import websockets

from callsense.connectors.app import create_app
from callsense.connectors.appconfig import AppConfig
from callsense.connectors.auth import Caller, KeyStore
from callsense.connectors.service_settings import ServiceSettings
from callsense.pipeline.config import CacheConfig
from callsense.pipeline.distributed.admission import Admission
from tests.service.server import running, wait_ready


def _service_app(tmp_path: Path, cfg: AppConfig) -> Any:
    """The service's app on a fresh SQLite database, without models (upgrades only)."""
    return create_app(
        cfg,
        db_url=f"sqlite:///{tmp_path}/db.sqlite",
        load_models=False,
        settings=ServiceSettings(data_dir=tmp_path / "data", scheduler=False),
    )


def test_calls_beyond_max_calls_are_refused_with_503(tmp_path: Path) -> None:
    cfg = AppConfig(cache=CacheConfig(enabled=False), max_calls=1)
    app = _service_app(tmp_path, cfg)
    key = app.state.runtime.keys.create("t")
    with running(app) as url:
        wait_ready(url)
        ws_url = url.replace("http://", "ws://") + f"/v1/stream?api_key={key}"

        async def scenario() -> None:
            first = await websockets.connect(ws_url)  # admitted: waits for its start message
            with pytest.raises(websockets.InvalidStatus) as refused:
                await websockets.connect(ws_url)
            assert refused.value.response.status_code == 503
            await first.close()
            for _ in range(50):  # the slot frees once the first call has ended
                if app.state.admission.stats().active == 0:
                    break
                await asyncio.sleep(0.05)
            again = await websockets.connect(ws_url)
            await again.close()

        asyncio.run(scenario())
    assert app.state.admission.stats().refused == 1


def test_an_upgrade_holds_a_slot_only_once_its_key_passed() -> None:
    """A burst of upgrades still checking their keys (an attacker's, invalid ones) takes no
    slot, so an honest call arriving meanwhile is admitted; one key's extra calls neither."""
    gate = Admission(2, per_key=1)
    assert [gate.check() for _ in range(500)] == [None] * 500
    assert gate.stats().active == 0
    assert gate.enter("attacker") is None
    assert gate.enter("attacker") == "key"  # beyond per_key: refused, no slot taken
    assert gate.enter("honest") is None
    assert gate.check() == "full" and gate.enter("third") == "full"
    gate.leave("attacker")
    assert gate.enter("third") is None
    assert gate.stats().active == 2 and gate.stats().refused == 3


class GatedKeys(KeyStore):
    """The real key store, whose lookups wait for the test to open the gate: an upgrade
    burst then arrives while the first lookup is still running."""

    def __init__(self, store: KeyStore) -> None:
        super().__init__(store.engine)
        self.gate = threading.Event()
        self.lookups = 0

    def identify(self, key: str) -> Caller | None:
        self.lookups += 1
        self.gate.wait(10)
        return super().identify(key)


def test_a_burst_of_upgrades_with_one_key_costs_one_key_lookup(tmp_path: Path) -> None:
    """500 upgrades at once under one key would otherwise queue 500 database lookups on
    the service's threads; a key revoked since is refused at the next upgrade."""
    cfg = AppConfig(cache=CacheConfig(enabled=False), max_calls=64)
    app = _service_app(tmp_path, cfg)
    keys = app.state.runtime.keys = GatedKeys(app.state.runtime.keys)
    key = keys.create("burst")
    with running(app) as url:
        wait_ready(url)
        ws_url = url.replace("http://", "ws://") + f"/v1/stream?api_key={key}"

        async def burst(n: int) -> list[int]:
            async def one() -> int:
                try:
                    async with websockets.connect(ws_url, open_timeout=20):
                        return 101
                except websockets.InvalidStatus as exc:
                    return exc.response.status_code

            calls = [asyncio.create_task(one()) for _ in range(n)]
            await asyncio.sleep(1.0)  # every upgrade has reached its key check by now
            keys.gate.set()
            return await asyncio.gather(*calls)

        assert asyncio.run(burst(30)) == [101] * 30
        assert keys.lookups == 1
        keys.revoke("burst")
        keys.gate.clear()
        assert asyncio.run(burst(5)) == [401] * 5
        assert keys.lookups == 2


def test_a_key_may_hold_only_so_many_connections_that_have_not_started() -> None:
    gate = Admission(10, unstarted_per_key=2)
    assert gate.enter("idle") is None and gate.opening("idle")
    assert gate.enter("idle") is None and gate.opening("idle")
    assert gate.enter("idle") is None and not gate.opening("idle")  # the third waits: refused
    gate.leave("idle")
    assert gate.enter("honest") is None and gate.opening("honest")  # another key is not held up
    gate.opened("honest")  # its call started: it no longer counts against the key
    assert gate.opening("honest") and gate.opening("honest")
    gate.opened("idle")  # one idle connection went
    assert gate.opening("idle")
    with pytest.raises(RuntimeError):
        Admission(1).opened("nobody")


def test_idle_connections_of_one_key_are_refused_beyond_max_unstarted_per_key(
    tmp_path: Path,
) -> None:
    cfg = AppConfig(cache=CacheConfig(enabled=False), max_calls=64, max_unstarted_per_key=3)
    app = _service_app(tmp_path, cfg)
    idle_key, honest_key = app.state.runtime.keys.create("idle"), app.state.runtime.keys.create("h")
    with running(app) as url:
        wait_ready(url)
        base = url.replace("http://", "ws://") + "/v1/stream?api_key="

        async def scenario() -> None:
            held = [await websockets.connect(base + idle_key) for _ in range(3)]
            with pytest.raises(websockets.InvalidStatus) as refused:
                await websockets.connect(base + idle_key)
            assert refused.value.response.status_code == 429
            assert b"have not started their call" in refused.value.response.body
            other = await websockets.connect(base + honest_key)  # another key gets in
            await held.pop().close()
            for _ in range(100):  # the server counts the closed one out as its session ends
                try:
                    held.append(await websockets.connect(base + idle_key))
                    break
                except websockets.InvalidStatus:
                    await asyncio.sleep(0.05)
            assert len(held) == 3
            for ws in [*held, other]:
                await ws.close()

        asyncio.run(scenario())
