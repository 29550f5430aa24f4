"""A real ``callsense serve`` process for tests that kill or signal it."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Gateway:
    """One gateway's database, data dir, model and key; ``start`` runs a serve process."""

    tmp: Path
    model_dir: Path
    port: int = field(default_factory=free_port)
    key: str = ""

    def __post_init__(self) -> None:
        self.env = {
            **os.environ,
            "CALLSENSE_MODEL": str(self.model_dir),
            "CALLSENSE_CACHE_DIR": str(self.tmp / "cache"),
        }
        self.tmp.mkdir(parents=True, exist_ok=True)  # callsense never creates a db's directory
        self.db = f"sqlite:///{self.tmp}/db.sqlite"
        made = subprocess.run(
            [
                sys.executable,
                "-m",
                "callsense.connectors.cli",
                "keys",
                "create",
                "t",
                "--db",
                self.db,
            ],
            env=self.env,
            capture_output=True,
            text=True,
            check=True,
        )
        self.key = made.stdout.strip().splitlines()[-1]

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}

    def ws(self, path: str) -> str:
        return f"ws://127.0.0.1:{self.port}{path}?api_key={self.key}"

    def start(self, *args: str) -> subprocess.Popen[bytes]:
        """Start serving (same port and database each time) and wait until ready."""
        cmd = [
            sys.executable,
            "-m",
            "callsense.connectors.cli",
            "serve",
            "--port",
            str(self.port),
            "--db",
            self.db,
            "--data-dir",
            str(self.tmp / "data"),
            *args,
        ]
        log = (self.tmp / f"serve-{time.monotonic_ns()}.log").open("wb")
        proc = subprocess.Popen(cmd, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{self.base}/readyz", timeout=5).status_code == 200:
                    return proc
            if proc.poll() is not None:
                break
            time.sleep(0.3)
        proc.kill()
        raise AssertionError("the gateway did not become ready")


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.kill()
        proc.wait(30)
