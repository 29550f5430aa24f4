"""edge-tts: the request it would send (no network) and the fast fallback when it cannot."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from callsense.pipeline.tts import FallbackTts, TtsUnavailableError
from callsense.pipeline.tts.config import EdgeSettings
from callsense.pipeline.tts.edge_engine import EdgeTts
from callsense.pipeline.tts.espeak_engine import EspeakTts
from tests.tts.conftest import probe


def test_request_uses_the_voice_of_each_language() -> None:
    engine = EdgeTts()
    voices = {lang: engine.request("hi", lang).voice for lang in ("en", "zh", "yue", "ja", "ko")}
    assert voices == {
        "en": "Microsoft Server Speech Text to Speech Voice (en-US, AriaNeural)",
        "zh": "Microsoft Server Speech Text to Speech Voice (zh-CN, XiaoxiaoNeural)",
        "yue": "Microsoft Server Speech Text to Speech Voice (zh-HK, HiuMaanNeural)",
        "ja": "Microsoft Server Speech Text to Speech Voice (ja-JP, NanamiNeural)",
        "ko": "Microsoft Server Speech Text to Speech Voice (ko-KR, SunHiNeural)",
    }
    assert engine.request("hi", "zh-CN").voice == voices["zh"]


def test_request_carries_rate_pitch_volume_into_ssml() -> None:
    settings = EdgeSettings(rate="-10%", pitch="+5Hz", volume="+20%", connect_timeout_s=2)
    req = EdgeTts(settings).request("Your refund <ref> & invoice", "en")
    assert (req.rate, req.pitch, req.volume, req.connect_timeout_s) == ("-10%", "+5Hz", "+20%", 2)
    assert len(req.ssml) == 1
    ssml = req.ssml[0]
    assert "<prosody pitch='+5Hz' rate='-10%' volume='+20%'>" in ssml
    assert "Your refund &lt;ref&gt; &amp; invoice" in ssml  # text is XML-escaped
    assert f"<voice name='{req.voice}'>" in ssml


def test_long_reply_is_split_into_several_requests() -> None:
    req = EdgeTts().request("Please hold the line. " * 400, "en")
    assert len(req.ssml) >= 2
    assert all("en-US, AriaNeural" in part for part in req.ssml)


def test_edge_rejects_an_invalid_voice_before_any_io() -> None:
    engine = EdgeTts(EdgeSettings(voices={"en": "not a voice name!"}))
    with pytest.raises(ValueError):
        engine.request("hi", "en")


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def silent_proxy() -> Iterator[str]:
    """A loopback TCP port that accepts connections (backlog) and never answers a byte."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    try:
        yield f"http://127.0.0.1:{server.getsockname()[1]}"
    finally:
        server.close()


def test_refused_connection_fails_fast_with_retryable_error() -> None:
    engine = EdgeTts(EdgeSettings(proxy=f"http://127.0.0.1:{_closed_port()}", timeout_s=30))
    with pytest.raises(TtsUnavailableError, match="edge-tts unreachable"):
        engine.synthesize("hello", "en")


def test_silent_server_hits_the_request_timeout(silent_proxy: str) -> None:
    engine = EdgeTts(EdgeSettings(proxy=silent_proxy, timeout_s=0.5, connect_timeout_s=1))
    with pytest.raises(TtsUnavailableError, match=r"no answer within 0\.5 s"):
        engine.synthesize("hello", "en")


def test_chain_falls_back_to_offline_engine_when_edge_is_down(
    silent_proxy: str, tmp_path: Path
) -> None:
    chain = FallbackTts([EdgeTts(EdgeSettings(proxy=silent_proxy, timeout_s=0.5)), EspeakTts()])
    result = chain.save("您好，请稍等。", "zh", tmp_path / "reply.wav")
    assert (result.engine, result.voice, result.cached) == ("espeak", "cmn", False)
    assert len(result.failures) == 1 and result.failures[0].startswith("edge: ")
    info = probe(tmp_path / "reply.wav")
    assert (info["codec"], info["rate"]) == ("pcm_s16le", 16000)
    assert info["duration"] == pytest.approx(result.duration_s, abs=0.01)


def test_fallback_also_works_inside_a_running_event_loop() -> None:
    """A FastAPI handler calls the stage from inside a loop; edge runs on its own loop then."""
    chain = FallbackTts(
        [EdgeTts(EdgeSettings(proxy=f"http://127.0.0.1:{_closed_port()}")), EspeakTts()]
    )

    async def handler() -> str:
        return chain.speak("hello", "en").engine

    assert asyncio.run(handler()) == "espeak"
