"""kill -9 of a gateway mid-call: on restart it replays the call's stored utterances and the
call gets its decisions and summary (issue 10's durability promise)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from callsense.connectors.runtime import LIVE_RECOVERED
from tests.live.client import Pacer, send_pcm
from tests.live.conftest import CallAudio
from tests.live.gateway import Gateway, stop
from tests.live.test_live_ws import STEREO_8K_FRAME, start_message

pytestmark = [pytest.mark.model, pytest.mark.slow]


def test_killed_gateway_recovers_its_live_call_on_restart(
    tmp_path: Path, keyed_model_dir: Path, call_audio: CallAudio
) -> None:
    gw = Gateway(tmp_path, keyed_model_dir)
    server = gw.start()
    try:
        third_angry_end = [t for t in call_audio.timeline if t.speaker == "customer"][2].end
        cut = int((third_angry_end + 2.0) * 8000) * 4

        async def stream() -> None:
            async with connect(gw.ws("/v1/stream")) as ws:
                await ws.send(start_message("crash-call"))
                await send_pcm(ws, call_audio.pcm8k[:cut], STEREO_8K_FRAME, Pacer(speed=4.0))
                # wait until the gateway has stored the three angry utterances, then kill it
                angry: list[dict] = []
                deadline = time.monotonic() + 60
                while len(angry) < 3 and time.monotonic() < deadline:
                    await asyncio.sleep(0.2)
                    body = httpx.get(f"{gw.base}/v1/calls/crash-call", headers=gw.headers).json()
                    angry = [u for u in body.get("utterances", []) if u["emotion"] == "ANGRY"]
                assert len(angry) >= 3, f"only {len(angry)} angry utterances stored in 60 s"
                os.kill(server.pid, signal.SIGKILL)
                with pytest.raises(ConnectionClosed):  # the connection dies with the server
                    async with asyncio.timeout(30):
                        while True:
                            await ws.recv()

        asyncio.run(stream())
        assert server.wait(30) == -signal.SIGKILL
    finally:
        stop(server)

    restarted = gw.start()
    try:
        deadline = time.monotonic() + 60
        while True:
            body = httpx.get(f"{gw.base}/v1/calls/crash-call", headers=gw.headers).json()
            if body["status"] == "done" or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert body["status"] == "done", body
        assert body["error"] == LIVE_RECOVERED
        assert [d["rule"] for d in body["decisions"]] == ["angry-streak"]
        assert body["summary"]["escalated"] is True
    finally:
        restarted.send_signal(signal.SIGTERM)
        try:
            restarted.wait(30)
        except subprocess.TimeoutExpired:
            stop(restarted)
