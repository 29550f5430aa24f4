"""edge-tts: Microsoft Edge's online neural voices, the first choice when the network is there.

Every request has a connect limit and a whole-request limit, and any failure (no DNS, refused,
timed out, service error) becomes ``TtsUnavailableError`` so the chain moves on to the offline
engines at once. The request itself is built by edge-tts's own ``Communicate`` without any
I/O, so ``request()`` shows what would be sent (voice, rate, pitch, SSML) with no network.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

from callsense.pipeline.tts.base import Audio, TtsEngine, TtsUnavailableError
from callsense.pipeline.tts.config import EdgeSettings

__all__ = ["EdgeRequest", "EdgeTts"]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class EdgeRequest:
    """What edge-tts would send for one reply: the validated settings and the SSML bodies."""

    voice: str
    rate: str
    volume: str
    pitch: str
    ssml: tuple[str, ...]
    connect_timeout_s: int
    proxy: str | None


class EdgeTts(TtsEngine):
    name = "edge"
    offline = False

    def __init__(self, settings: EdgeSettings | None = None) -> None:
        self.settings = s = settings or EdgeSettings()
        super().__init__(s.voices, {"rate": s.rate, "volume": s.volume, "pitch": s.pitch})

    def communicate(self, text: str, lang: str) -> Any:
        """edge-tts's ``Communicate`` for this reply (validates voice/rate/pitch; no I/O)."""
        voice = self.voice_for(lang)
        if voice is None:
            raise TtsUnavailableError(f"edge has no voice for language {lang!r}")
        import edge_tts

        s = self.settings
        return edge_tts.Communicate(
            text,
            voice,
            rate=s.rate,
            volume=s.volume,
            pitch=s.pitch,
            proxy=s.proxy,
            connect_timeout=s.connect_timeout_s,
            receive_timeout=max(1, math.ceil(s.timeout_s)),
        )

    def request(self, text: str, lang: str) -> EdgeRequest:
        """The request edge-tts would make, for logs and tests; touches no network."""
        from edge_tts.communicate import mkssml

        comm = self.communicate(text, lang)
        cfg = comm.tts_config
        return EdgeRequest(
            voice=cfg.voice,
            rate=cfg.rate,
            volume=cfg.volume,
            pitch=cfg.pitch,
            ssml=tuple(mkssml(cfg, part) for part in comm.texts),
            connect_timeout_s=self.settings.connect_timeout_s,
            proxy=self.settings.proxy,
        )

    def synthesize(self, text: str, lang: str) -> Audio:
        comm = self.communicate(text, lang)

        async def collect() -> bytes:
            out = bytearray()
            async for chunk in comm.stream():
                if chunk["type"] == "audio":
                    out += chunk["data"]
            return bytes(out)

        try:
            mp3 = _run_with_timeout(collect, self.settings.timeout_s)
        except TimeoutError:
            raise TtsUnavailableError(
                f"edge-tts gave no answer within {self.settings.timeout_s:g} s"
            ) from None
        except Exception as exc:  # aiohttp/edge-tts/OS errors all mean "not now"
            reason = getattr(exc, "strerror", None) or str(exc)  # aiohttp's str() dumps its SSL ctx
            detail = f"{type(exc).__name__}: {reason}"[:200]
            raise TtsUnavailableError(f"edge-tts unreachable ({detail})") from exc
        if not mp3:
            raise TtsUnavailableError("edge-tts returned no audio")
        from callsense.pipeline.audio import decode

        decoded = decode(mp3, name="edge-tts.mp3")
        return Audio(decoded.channels[0], decoded.sample_rate)


def _run_with_timeout(make: Callable[[], Awaitable[T]], timeout_s: float) -> T:
    """Run a coroutine to completion with a hard limit, from sync code or inside an event loop.

    A private loop is closed without waiting for its executor, so a resolver thread stuck on
    DNS cannot hold the caller past ``timeout_s`` (``asyncio.run`` would wait for it).
    """

    def run() -> T:
        loop = asyncio.new_event_loop()
        try:
            return loop.run_until_complete(asyncio.wait_for(make(), timeout_s))
        finally:
            try:
                loop.run_until_complete(loop.shutdown_asyncgens())
            finally:
                loop.close()

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return run()
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="edge-tts") as pool:
        return pool.submit(run).result()
