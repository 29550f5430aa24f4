"""Run a real callsense app under uvicorn on 127.0.0.1 (a free port) in a background thread.

Reusable by other test packages (live, web): ``with running(app) as base_url: ...``.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator

import httpx
import uvicorn
from fastapi import FastAPI

from callsense.connectors.app import SERVER_OPTIONS

__all__ = ["running", "wait_ready"]


@contextlib.contextmanager
def running(app: FastAPI, *, timeout: float = 30.0) -> Iterator[str]:
    """Serve ``app`` until the block ends; yields ``http://127.0.0.1:PORT``."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, **SERVER_OPTIONS, lifespan="on", timeout_graceful_shutdown=10)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()


def wait_ready(base_url: str, timeout: float = 120.0) -> dict[str, object]:
    """Poll ``/readyz`` until 200; returns its body (fails the test on timeout)."""
    deadline = time.monotonic() + timeout
    body: dict[str, object] = {}
    while time.monotonic() < deadline:
        resp = httpx.get(f"{base_url}/readyz", timeout=5)
        body = resp.json()
        if resp.status_code == 200:
            return body
        if isinstance(body.get("models"), str) and "Error" in str(body["models"]):
            break
        time.sleep(0.2)
    raise AssertionError(f"service not ready: {body}")
