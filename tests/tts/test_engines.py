"""The offline engines make real speech: ffprobe/ffmpeg check what they wrote."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from callsense.pipeline.tts import OutputFormat, TtsUnavailableError, write_audio
from callsense.pipeline.tts.config import EspeakSettings, PiperSettings
from callsense.pipeline.tts.espeak_engine import EspeakTts
from callsense.pipeline.tts.piper_engine import PiperTts, resolve_piper_voice
from tests.tts.conftest import decode_f32, plausible_seconds, probe

LINES = {
    "en": "I am sorry about the trouble, let me transfer you to a supervisor now.",
    "zh": "非常抱歉给您带来不便，我马上为您转接主管。",
    "yue": "唔好意思，我而家幫你轉接主管。",
    "ja": "ご迷惑をおかけして申し訳ありません。",
    "ko": "불편을 드려 죄송합니다.",
}


def _check_speech(path: Path, text: str, lang: str, codec: str, rate: int) -> float:
    info = probe(path)
    assert (info["codec"], info["rate"], info["channels"]) == (codec, rate, 1)
    low, high = plausible_seconds(text, lang)
    assert low <= info["duration"] <= high, (lang, info["duration"], low, high)
    samples = decode_f32(path, rate)
    rms = float(np.sqrt(np.mean(samples**2)))
    assert rms > 0.01  # speech, not silence
    return float(info["duration"])


@pytest.mark.parametrize("lang", sorted(LINES))
def test_espeak_speaks_every_sensevoice_language(lang: str, tmp_path: Path) -> None:
    text = LINES[lang]
    audio = EspeakTts().synthesize(text, lang)
    assert audio.sample_rate == 22050
    path = write_audio(audio, tmp_path / f"{lang}.wav", OutputFormat.WAV16K)
    _check_speech(path, text, lang, "pcm_s16le", 16000)


def test_espeak_zh_telephony_file(tmp_path: Path) -> None:
    audio = EspeakTts().synthesize(LINES["zh"], "zh")
    path = write_audio(audio, tmp_path / "zh-phone.wav", OutputFormat.MULAW8K)
    _check_speech(path, LINES["zh"], "zh", "pcm_mulaw", 8000)


def test_espeak_rate_changes_length() -> None:
    slow = EspeakTts(EspeakSettings(speed_wpm=110)).synthesize(LINES["en"], "en")
    fast = EspeakTts(EspeakSettings(speed_wpm=260)).synthesize(LINES["en"], "en")
    assert slow.duration_s > 1.5 * fast.duration_s


def test_espeak_missing_binary_is_unavailable_not_a_crash() -> None:
    engine = EspeakTts(EspeakSettings(binary="espeak-ng-not-installed"))
    with pytest.raises(TtsUnavailableError, match="install the Debian package espeak-ng"):
        engine.synthesize("hello", "en")


def test_espeak_has_no_voice_outside_its_map() -> None:
    engine = EspeakTts(EspeakSettings(voices={"en": "en-us"}))
    assert engine.capabilities.languages == frozenset({"en"})
    assert engine.capabilities.offline
    with pytest.raises(TtsUnavailableError, match="no voice for language 'zh'"):
        engine.synthesize("你好", "zh")


def test_piper_packaged_en_voice_speaks(piper_tts: PiperTts, tmp_path: Path) -> None:
    text = LINES["en"]
    audio = piper_tts.synthesize(text, "en")
    assert audio.sample_rate == 22050
    wav = write_audio(audio, tmp_path / "piper.wav", OutputFormat.WAV16K)
    _check_speech(wav, text, "en", "pcm_s16le", 16000)
    phone = write_audio(audio, tmp_path / "piper-phone.wav", OutputFormat.MULAW8K)
    _check_speech(phone, text, "en", "pcm_mulaw", 8000)


def test_piper_longer_text_gives_longer_audio(piper_tts: PiperTts) -> None:
    short = piper_tts.synthesize("Thanks.", "en")
    long = piper_tts.synthesize("Thanks for calling, have a wonderful day and goodbye.", "en")
    assert long.duration_s > 2 * short.duration_s


def test_piper_voice_resolution(tmp_path: Path) -> None:
    packaged = resolve_piper_voice("en_US-joe-medium", [])
    assert packaged.name == "en_US-joe-medium.onnx" and packaged.is_file()
    assert packaged.with_name(packaged.name + ".json").is_file()
    with pytest.raises(TtsUnavailableError, match="not found"):
        resolve_piper_voice("zh_CN-nobody-low", [tmp_path])
    with pytest.raises(TtsUnavailableError, match="does not exist"):
        resolve_piper_voice(str(tmp_path / "missing.onnx"), [])


def test_piper_broken_model_file_is_unavailable(tmp_path: Path) -> None:
    (tmp_path / "broken.onnx").write_bytes(b"not a model")
    (tmp_path / "broken.onnx.json").write_text("{}")
    engine = PiperTts(PiperSettings(voices={"en": "broken"}, voice_dirs=[tmp_path]))
    with pytest.raises(TtsUnavailableError, match=r"cannot load broken\.onnx"):
        engine.synthesize("hello", "en")
