"""Genesys's AudioHook reference implementation against a real ``callsense serve``: the server
(``tests.live.gateway.Gateway`` with a client secret for its key), the driver of the reference
library (``audiohook_peer/driver.js``) and what it reports, and a model whose loading waits for
the test.

The peer is the copy of ``../shared/audiohook-reference`` that ``.ci/install`` prepares
(``tools.system_assets.audiohook_peer``); it runs under Node, nothing of it is in this repository.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from tests.live.gateway import Gateway
from tools import shared_assets, system_assets

__all__ = [
    "PEER_SOURCE",
    "PeerServer",
    "PeerSession",
    "SlowModel",
    "pcmu_stereo",
    "peer_dir",
    "run_driver",
]

PEER_SOURCE = shared_assets.shared_root() / "audiohook-reference"  # ../shared/audiohook-reference
DRIVER = Path(__file__).resolve().parent / "audiohook_peer" / "driver.js"
_SECONDS = re.compile(r"PT(\d+(?:\.\d*)?|\.\d+)S")


def peer_dir() -> Path:
    """The prepared peer (raises ``MissingSystemAsset`` naming the fix when it is not)."""
    return system_assets.audiohook_peer(PEER_SOURCE)


def seconds(duration: str) -> float:
    """An AudioHook duration as the reference library writes it (``PT12.5S``)."""
    m = _SECONDS.fullmatch(duration)
    assert m is not None, f"not an AudioHook duration: {duration!r}"
    return float(m.group(1))


def pcmu_stereo(wav: Path, out: Path) -> Path:
    """``wav`` as raw interleaved mu-law at 8 kHz, its two channels kept (left = customer =
    AudioHook's ``external``), as Genesys streams a call."""
    cmd = [system_assets.program("ffmpeg"), "-nostdin", "-v", "error", "-y", "-i", str(wav),
           "-ac", "2", "-ar", "8000", "-f", "mulaw", str(out)]  # fmt: skip
    subprocess.run(cmd, check=True, capture_output=True)
    return out


@dataclass
class PeerServer:
    """A ``callsense serve`` whose API key has a client secret, as Genesys's integration has."""

    gateway: Gateway
    secret: str  # base64, from ``callsense keys secret``

    @classmethod
    def create(cls, tmp: Path, model_dir: Path) -> PeerServer:
        gateway = Gateway(tmp, model_dir)
        made = subprocess.run(
            [sys.executable, "-m", "callsense.connectors.cli", "keys", "secret", "t",
             "--db", gateway.db],
            env=gateway.env, capture_output=True, text=True, check=False,
        )  # fmt: skip
        assert made.returncode == 0, f"callsense keys secret failed: {made.stderr.strip()}"
        return cls(gateway, made.stdout.strip().splitlines()[-1])

    @property
    def uri(self) -> str:
        """Where Genesys connects: no key in the query, it comes as ``X-API-KEY``."""
        return f"ws://127.0.0.1:{self.gateway.port}/v1/audiohook"

    def call(self, call_id: str) -> httpx.Response:
        return httpx.get(f"{self.gateway.base}/v1/calls/{call_id}",
                         headers=self.gateway.headers, timeout=10)  # fmt: skip

    def finished_call(self, call_id: str, timeout: float = 60.0) -> dict[str, Any]:
        """The stored call once it is done or failed (its last seconds are analysed after
        ``closed``)."""
        deadline = time.monotonic() + timeout
        while True:
            resp = self.call(call_id)
            if resp.status_code == 200 and resp.json()["status"] in ("done", "failed"):
                return dict(resp.json())
            assert time.monotonic() < deadline, f"call {call_id}: {resp.status_code} {resp.text}"
            time.sleep(0.2)

    def readyz(self) -> dict[str, Any]:
        with contextlib.suppress(httpx.TransportError):
            return dict(httpx.get(f"{self.gateway.base}/readyz", timeout=5).json())
        return {}


@dataclass(frozen=True)
class PeerSession:
    """One AudioHook session as the driver saw it (see driver.js for the fields)."""

    raw: dict[str, Any]

    @property
    def id(self) -> str:
        return str(self.raw["sessionId"])

    @property
    def conversation_id(self) -> str:
        return str(self.raw["conversationId"])

    @property
    def status(self) -> int | None:
        """The HTTP status that answered the upgrade (None: no answer at all)."""
        upgrade = self.raw["upgrade"]
        return None if upgrade is None else int(upgrade["status"])

    @property
    def headers(self) -> dict[str, str]:
        upgrade = self.raw["upgrade"] or {}
        return {str(k).lower(): str(v) for k, v in (upgrade.get("headers") or {}).items()}

    @property
    def opened_ws(self) -> bool:
        return bool(self.raw["wsOpened"])

    def sent(self, type_: str | None = None) -> list[dict[str, Any]]:
        """Our messages (``audioBytes``: audio sent before each), optionally of one type."""
        return [e for e in self.raw["sent"] if type_ is None or e["msg"]["type"] == type_]

    def received(self, type_: str | None = None) -> list[dict[str, Any]]:
        """The server's messages, each as ``msg``, optionally of one type."""
        return [e["msg"] for e in self.raw["received"]
                if type_ is None or e["msg"].get("type") == type_]  # fmt: skip

    @property
    def received_types(self) -> list[str]:
        return [str(m.get("type")) for m in self.received()]

    @property
    def audio_bytes(self) -> int:
        return int(self.raw["audio"]["bytes"])

    @property
    def close_code(self) -> int | None:
        close = self.raw["close"]
        return None if close is None else int(close["code"])

    @property
    def last_position(self) -> float:
        """The stream position of the client's last message."""
        return seconds(str(self.raw["lastPosition"]))

    @property
    def problems(self) -> list[str]:
        """An abnormal end or error, as the library saw it: what it logged at warn or above,
        WebSocket errors, ``error`` messages it sent, a session the driver gave up on."""
        out = [f"{e['level']}: {e['msg']}" for e in self.raw["problems"]]
        out += [f"websocket: {e['msg']}" for e in self.raw["wsErrors"]]
        out += [f"sent error: {e['msg']['parameters']}" for e in self.sent("error")]
        if self.raw["timedOut"]:
            out.append(f"timed out in state {self.raw['state']}")
        return out

    def describe(self) -> str:
        """Both directions in order, for assertion messages."""
        events = [(e["t"], ">", e["msg"]) for e in self.raw["sent"]]
        events += [(e["t"], "<", e["msg"]) for e in self.raw["received"]]
        lines = [f"{t:7.2f} {d} {json.dumps(m)[:300]}" for t, d, m in sorted(events, key=_t)]
        lines.append(f"close: {self.raw['close']}; problems: {self.problems}")
        return "\n".join(lines)


def _t(event: tuple[float, str, dict[str, Any]]) -> float:
    return event[0]


def run_driver(
    peer: Path,
    server: PeerServer,
    audio: Path,
    scenarios: dict[str, list[dict[str, Any]]],
    tmp: Path,
    *,
    secret: str | None = None,
    speed: float = 3.0,
    timeout: float = 240.0,
) -> dict[str, list[PeerSession]]:
    """Run ``scenarios`` (name: its sessions, one after the other) concurrently in one Node
    process; each name maps to its sessions' reports."""
    plan = {
        "peer": str(peer),
        "uri": server.uri,
        "apiKey": server.gateway.key,
        "clientSecret": server.secret if secret is None else secret,
        "audio": str(audio),
        "speed": speed,
        "scenarios": [{"name": name, "sessions": s} for name, s in scenarios.items()],
    }
    path = tmp / f"plan-{time.monotonic_ns()}.json"
    path.write_text(json.dumps(plan))
    node = system_assets.program("node")
    done = subprocess.run([node, str(DRIVER), str(path)], capture_output=True, text=True,
                          timeout=timeout, check=False)  # fmt: skip
    assert done.returncode == 0, f"driver failed ({done.returncode}): {done.stderr[-3000:]}"
    out = json.loads(done.stdout)
    crashed = {name: r["crashed"] for name, r in out.items() if "crashed" in r}
    assert not crashed, f"driver scenarios crashed: {crashed}"
    return {name: [PeerSession(s) for s in r["sessions"]] for name, r in out.items()}


class SlowModel:
    """A copy of a model directory whose ``am.mvn`` (the CMVN that funasr reads while it loads
    the model) is a named pipe: loading waits, as on slow storage, until :meth:`release` lets
    the bytes through. Nothing in the service is changed or mocked; it just cannot finish
    loading before the test says so."""

    def __init__(self, source: Path, where: Path) -> None:
        where.mkdir(parents=True)
        for item in source.iterdir():
            if item.name != "am.mvn":
                (where / item.name).symlink_to(item.resolve())
        self.dir = where
        self.content = (source / "am.mvn").read_bytes()
        self.fifo = where / "am.mvn"
        os.mkfifo(self.fifo)
        self._release = threading.Event()
        self._stop = threading.Event()
        self.reads = 0

    @contextlib.contextmanager
    def feeding(self) -> Iterator[SlowModel]:
        """Serve the pipe's readers (after :meth:`release`) until the block ends."""
        thread = threading.Thread(target=self._feed, name="slow-model", daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self._stop.set()
            thread.join(10)

    def release(self) -> None:
        self._release.set()

    def _feed(self) -> None:
        while not self._stop.is_set():
            if not self._release.wait(0.05):
                continue
            try:  # non-blocking: there is no reader yet (ENXIO) or there is one
                fd = os.open(self.fifo, os.O_WRONLY | os.O_NONBLOCK)
            except OSError as exc:
                if exc.errno != errno.ENXIO:
                    raise
                time.sleep(0.05)
                continue
            os.set_blocking(fd, True)
            try:
                view = memoryview(self.content)
                while view:
                    view = view[os.write(fd, view) :]
            except BrokenPipeError:  # the reader went (the server stopped): serve the next
                pass
            finally:
                os.close(fd)
            self.reads += 1
