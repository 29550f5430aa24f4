"""SIGTERM drains a gateway: no new live calls (readyz 503, streams 503), the running call
goes on to its end, then the process exits."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

import httpx
import pytest
import websockets
from websockets.asyncio.client import connect

from tests.live.conftest import CallAudio
from tests.live.gateway import Gateway, stop
from tests.live.test_live_ws import STEREO_8K_FRAME, start_message

pytestmark = [pytest.mark.model, pytest.mark.slow]


def test_sigterm_drains_live_calls_then_exits(
    tmp_path: Path, fixed_model_dir: Path, call_audio: CallAudio
) -> None:
    gw = Gateway(tmp_path, fixed_model_dir)
    server = gw.start("--drain-timeout", "60")
    base, url = gw.base, gw.ws("/v1/stream")
    try:

        async def scenario() -> list[dict]:
            import json

            got: list[dict] = []
            async with connect(url) as ws:
                await ws.send(start_message("draining-call"))
                audio = call_audio.pcm8k[: 8000 * 4 * 3]
                for i in range(0, len(audio) // 2, STEREO_8K_FRAME):
                    await ws.send(audio[i : i + STEREO_8K_FRAME])
                server.send_signal(signal.SIGTERM)
                deadline = time.monotonic() + 20
                while True:  # the gateway says it is draining...
                    r = httpx.get(f"{base}/readyz", timeout=5)
                    if r.status_code == 503 and r.json()["draining"]:
                        break
                    assert time.monotonic() < deadline, r.text
                    await asyncio.sleep(0.1)
                with pytest.raises(websockets.InvalidStatus) as refused:  # ...takes no call
                    await connect(url)
                assert refused.value.response.status_code == 503
                for i in range(len(audio) // 2, len(audio), STEREO_8K_FRAME):  # ...and ours
                    await ws.send(audio[i : i + STEREO_8K_FRAME])  # goes on to its end
                await ws.send(json.dumps({"type": "stop"}))
                async for raw in ws:
                    got.append(json.loads(raw))
            return got

        messages = asyncio.run(scenario())
        assert messages and messages[-1]["type"] == "end"
        assert any(m["type"] == "utterance" for m in messages)
        assert server.wait(60) == 0  # exits by itself once the call has ended
    finally:
        stop(server)
