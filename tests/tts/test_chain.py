"""FallbackTts: order, cache, errors and privacy, with real subclass doubles at the engine seam."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from callsense.core.errors import InputError, RetryableError
from callsense.pipeline.tts import (
    EmptyTextError,
    FallbackTts,
    OutputFormat,
    TtsCache,
    TtsConfig,
    TtsUnavailableError,
    UnsupportedLanguageError,
)
from callsense.pipeline.tts.espeak_engine import EspeakTts
from tests.tts.conftest import DownTts, ToneTts, probe


def test_first_capable_engine_speaks(tmp_path: Path) -> None:
    zh_only = ToneTts({"zh": "tone-zh"})
    en = ToneTts({"en": "tone-en"})
    result = FallbackTts([zh_only, en], TtsCache(tmp_path)).speak("hello", "en")
    assert (zh_only.calls, en.calls) == (0, 1)
    assert (result.engine, result.voice, result.lang) == ("tone", "tone-en", "en")
    assert result.duration_s == pytest.approx(0.5, abs=0.001)


def test_cache_hit_does_not_run_the_engine(tmp_path: Path) -> None:
    engine = ToneTts()
    chain = FallbackTts([engine], TtsCache(tmp_path))
    first = chain.speak("Please hold.", "en")
    second = chain.speak("  Please hold.  ", "en")  # same reply once stripped
    assert engine.calls == 1
    assert (first.cached, second.cached) == (False, True)
    assert first.data == second.data


def test_cache_key_separates_text_voice_params_and_format(tmp_path: Path) -> None:
    engine = ToneTts()
    chain = FallbackTts([engine], TtsCache(tmp_path))
    chain.speak("one", "en")
    chain.speak("two", "en")
    chain.speak("one", "zh")  # another voice
    chain.speak("one", "en", OutputFormat.MULAW8K)
    assert engine.calls == 4
    faster = ToneTts(rate="2")
    FallbackTts([faster], TtsCache(tmp_path)).speak("one", "en")
    assert faster.calls == 1  # a changed param must not serve the old sound
    files = sorted(p.name for p in tmp_path.rglob("*.wav"))
    assert len(files) == 5
    assert not any("one" in name or "two" in name for name in files)  # names are hashes


def test_cached_reply_from_the_fallback_skips_the_network_engine(tmp_path: Path) -> None:
    down, tone = DownTts(), ToneTts()
    chain = FallbackTts([down, tone], TtsCache(tmp_path))
    first = chain.speak("hello", "en")
    assert first.failures == ("down: service down",)
    again = chain.speak("hello", "en")
    assert (down.calls, tone.calls) == (1, 1)
    assert (again.engine, again.cached) == ("tone", True)


def test_without_cache_the_engine_runs_every_time() -> None:
    engine = ToneTts()
    chain = FallbackTts([engine])
    chain.speak("hello", "en")
    chain.speak("hello", "en")
    assert engine.calls == 2


def test_all_engines_down_is_retryable_and_lists_reasons() -> None:
    chain = FallbackTts([DownTts(), DownTts()])
    with pytest.raises(TtsUnavailableError) as err:
        chain.speak("hello", "en")
    assert isinstance(err.value, RetryableError)
    assert str(err.value).count("down: service down") == 2


@pytest.mark.parametrize("text", ["", "   ", "\n\t"])
def test_empty_text_is_an_input_error_and_runs_nothing(text: str, tmp_path: Path) -> None:
    engine = ToneTts()
    chain = FallbackTts([engine], TtsCache(tmp_path))
    with pytest.raises(EmptyTextError, match="empty") as err:
        chain.speak(text, "en")
    assert isinstance(err.value, InputError)
    with pytest.raises(EmptyTextError):
        chain.synthesize(text, "en")
    assert engine.calls == 0
    assert not list(tmp_path.iterdir())


def test_unknown_language_is_a_clear_error_never_a_wrong_voice() -> None:
    engine = ToneTts()
    chain = FallbackTts([engine, EspeakTts()])
    with pytest.raises(UnsupportedLanguageError) as err:
        chain.speak("bonjour", "fr")
    assert "'fr'" in str(err.value)
    assert "configured languages: en, ja, ko, yue, zh" in str(err.value)
    assert isinstance(err.value, InputError)
    assert engine.calls == 0
    with pytest.raises(UnsupportedLanguageError):
        chain.synthesize("bonjour", "fr")


def test_region_subtag_falls_back_to_language() -> None:
    result = FallbackTts([ToneTts()]).speak("你好", "zh-CN")
    assert result.voice == "tone-zh"


def test_reply_text_never_reaches_the_logs(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    secret = "card ending 4921 for Ms Lovelace"
    chain = FallbackTts([DownTts(), ToneTts()], TtsCache(tmp_path))
    with caplog.at_level(logging.DEBUG):
        chain.speak(secret, "en")
        chain.speak(secret, "en")
        with pytest.raises(TtsUnavailableError):
            FallbackTts([DownTts()]).speak(secret, "en")
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "engine=tone" in logged and f"chars={len(secret)}" in logged
    assert "cached=True" in logged
    assert "4921" not in logged and "Lovelace" not in logged


def test_save_writes_the_file_atomically(tmp_path: Path) -> None:
    out = tmp_path / "out" / "reply.wav"
    result = FallbackTts([ToneTts()]).save("hello there", "en", out, OutputFormat.MULAW8K)
    info = probe(out)
    assert (info["codec"], info["rate"], info["channels"]) == ("pcm_mulaw", 8000, 1)
    assert info["duration"] == pytest.approx(1.1, abs=0.01)
    assert out.read_bytes() == result.data
    assert [p.name for p in out.parent.iterdir()] == ["reply.wav"]


def test_cache_path_blocked_by_a_file_still_replies(tmp_path: Path) -> None:
    blocker = tmp_path / "cache"
    blocker.write_text("not a directory")
    engine = ToneTts()
    chain = FallbackTts([engine], TtsCache(blocker))
    assert chain.speak("hello", "en").data
    assert chain.speak("hello", "en").cached is False
    assert engine.calls == 2


def test_from_config_builds_the_engines_in_order(tmp_path: Path) -> None:
    cfg = TtsConfig.model_validate({"engines": ["espeak", "edge"], "cache": {"dir": str(tmp_path)}})
    chain = FallbackTts.from_config(cfg)
    assert [e.name for e in chain.engines] == ["espeak", "edge"]
    assert chain.cache is not None and chain.cache.root == tmp_path
    assert [e.capabilities.offline for e in chain.engines] == [True, False]
    no_cache = TtsConfig.model_validate({"engines": ["espeak"], "cache": {"enabled": False}})
    assert FallbackTts.from_config(no_cache).cache is None


def test_chain_needs_an_engine() -> None:
    with pytest.raises(ValueError):
        FallbackTts([])
