"""A real service for the live tests (uvicorn on 127.0.0.1, the keyed test model, SQLite)
and the angry test call as the frames each protocol carries."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi import FastAPI

from callsense.connectors.app import create_app
from callsense.connectors.appconfig import AppConfig
from callsense.connectors.runtime import Runtime
from callsense.connectors.service_settings import ServiceSettings
from callsense.pipeline.config import CacheConfig, load_config
from tests.service.server import running, wait_ready


@dataclass
class LiveService:
    base_url: str
    key: str
    runtime: Runtime
    app: FastAPI
    secret: str | None = None  # the key's AudioHook client secret

    def audiohook(self, session_id: str) -> Any:
        """A signed AudioHook upgrade, as Genesys makes it (``async with``)."""
        from websockets.asyncio.client import connect

        from tests.live.audiohook_signing import signed_headers

        if self.secret is None:
            self.secret = self.runtime.keys.create_secret(self.key_name())
        url = self.ws("/v1/audiohook", key=None)
        headers = signed_headers(url, self.key, self.secret, session_id)
        return connect(url, additional_headers=headers)

    def key_name(self) -> str:
        name = self.runtime.keys.verify(self.key)
        assert name is not None
        return name

    def ws(self, path: str, *, key: str | None = "default") -> str:
        url = self.base_url.replace("http://", "ws://") + path
        if key is None:
            return url
        return f"{url}?api_key={self.key if key == 'default' else key}"


@contextmanager
def serving(tmp: Path, cfg: AppConfig) -> Iterator[LiveService]:
    """A real service for ``cfg`` on 127.0.0.1 with a SQLite file and one API key."""
    app = create_app(
        cfg,
        db_url=f"sqlite:///{tmp}/callsense.db",
        settings=ServiceSettings(data_dir=tmp / "data", delivery_interval_s=0.2, scheduler=False),
    )
    runtime: Runtime = app.state.runtime
    key = runtime.keys.create("live-tests")
    with running(app) as url:
        wait_ready(url)
        yield LiveService(url, key, runtime, app)


@pytest.fixture(scope="module")
def live_service(
    tmp_path_factory: pytest.TempPathFactory, keyed_model_dir: Path
) -> Iterator[LiveService]:
    tmp = tmp_path_factory.mktemp("live-service")
    base = load_config(None, model=str(keyed_model_dir), schema=AppConfig, environ={})
    with serving(tmp, base.model_copy(update={"cache": CacheConfig(enabled=False)})) as service:
        yield service


@dataclass(frozen=True)
class CallAudio:
    """The angry call (customer ch0, agent ch1) as raw frames, and its timeline."""

    pcm8k: bytes  # interleaved stereo int16 at 8 kHz: the mu-law samples, exactly
    mulaw8k: bytes  # interleaved stereo mu-law codes at 8 kHz
    pcm16k: bytes  # interleaved stereo int16 at 16 kHz (pipeline.audio.decode, quantized)
    duration: float
    timeline: list  # tests.calls.Turn

    def mulaw_channel(self, channel: int) -> bytes:
        return self.mulaw8k[channel::2]


def _ffmpeg(path: Path, *args: str) -> bytes:
    cmd = ["ffmpeg", "-nostdin", "-v", "error", "-i", str(path), "-ac", "2", *args, "-"]
    return subprocess.run(cmd, check=True, capture_output=True).stdout


@pytest.fixture(scope="session")
def call_audio(angry_call: tuple[Path, list]) -> CallAudio:
    from callsense.pipeline.audio import decode

    path, timeline = angry_call
    decoded = decode(path)
    stereo = np.stack(decoded.channels, axis=1)
    pcm16k = np.clip(np.round(stereo * 32768), -32768, 32767).astype("<i2").tobytes()
    return CallAudio(
        pcm8k=_ffmpeg(path, "-ar", "8000", "-f", "s16le"),
        mulaw8k=_ffmpeg(path, "-ar", "8000", "-f", "mulaw"),
        pcm16k=pcm16k,
        duration=decoded.duration,
        timeline=timeline,
    )
