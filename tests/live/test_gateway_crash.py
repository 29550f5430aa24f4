"""kill -9 of a gateway mid-call: on restart it replays the call's stored utterances and the
call gets its decisions and summary (issue 10's durability promise)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from websockets.asyncio.client import connect

from connectors.runtime import LIVE_RECOVERED
from tests.live.client import Pacer, send_pcm
from tests.live.conftest import CallAudio
from tests.live.test_live_ws import STEREO_8K_FRAME, start_message

pytestmark = [pytest.mark.model, pytest.mark.slow]


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_ready(base: str, timeout: float) -> None:
    """Until ``/readyz`` answers 200 (the process may not be listening yet)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.TransportError):
            if httpx.get(f"{base}/readyz", timeout=5).status_code == 200:
                return
        time.sleep(0.3)
    raise AssertionError("the gateway did not become ready")


def _serve(tmp: Path, port: int, env: dict[str, str]) -> subprocess.Popen[bytes]:
    cmd = [
        sys.executable,
        "-m",
        "connectors.cli",
        "serve",
        "--port",
        str(port),
        "--db",
        f"sqlite:///{tmp}/db.sqlite",
        "--data-dir",
        str(tmp / "data"),
    ]
    log = (tmp / f"serve-{port}.log").open("wb")
    return subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)


def test_killed_gateway_recovers_its_live_call_on_restart(
    tmp_path: Path, keyed_model_dir: Path, call_audio: CallAudio
) -> None:
    env = {
        **os.environ,
        "CALLSENSE_MODEL": str(keyed_model_dir),
        "CALLSENSE_CACHE_DIR": str(tmp_path / "cache"),
    }
    db = f"sqlite:///{tmp_path}/db.sqlite"
    made = subprocess.run(
        [sys.executable, "-m", "connectors.cli", "keys", "create", "t", "--db", db],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    key = made.stdout.strip().splitlines()[-1]
    headers = {"Authorization": f"Bearer {key}"}
    port = _port()
    server = _serve(tmp_path, port, env)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(base, timeout=120)
        third_angry_end = [t for t in call_audio.timeline if t.speaker == "customer"][2].end
        cut = int((third_angry_end + 2.0) * 8000) * 4

        async def stream() -> None:
            url = f"ws://127.0.0.1:{port}/v1/stream?api_key={key}"
            async with connect(url) as ws:
                await ws.send(start_message("crash-call"))
                await send_pcm(ws, call_audio.pcm8k[:cut], STEREO_8K_FRAME, Pacer(speed=4.0))
                # wait until the gateway has stored the three angry utterances, then kill it
                deadline = time.monotonic() + 60
                while time.monotonic() < deadline:
                    body = httpx.get(f"{base}/v1/calls/crash-call", headers=headers).json()
                    angry = [u for u in body.get("utterances", []) if u["emotion"] == "ANGRY"]
                    if len(angry) >= 3:
                        break
                    await asyncio.sleep(0.2)
                os.kill(server.pid, signal.SIGKILL)

        with contextlib.suppress(Exception):  # the connection dies with the server
            asyncio.run(stream())
        server.wait(30)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait(30)

    restarted = _serve(tmp_path, port, env)
    try:
        wait_ready(base, timeout=120)
        deadline = time.monotonic() + 60
        while True:
            body = httpx.get(f"{base}/v1/calls/crash-call", headers=headers).json()
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
            restarted.kill()
