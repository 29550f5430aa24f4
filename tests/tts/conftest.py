"""Helpers for TTS tests: real ffprobe/ffmpeg look at every file we write."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

from callsense.pipeline.tts import Audio, TtsEngine
from callsense.pipeline.tts.base import TtsUnavailableError


def probe(path: Path) -> dict[str, object]:
    """ffprobe's view of the single audio stream in ``path``."""
    out = subprocess.run(
        [
            "ffprobe", "-v", "error", "-print_format", "json", "-show_streams", "-show_format",
            str(path),
        ],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    info = json.loads(out.stdout)
    assert len(info["streams"]) == 1
    stream = info["streams"][0]
    return {
        "codec": stream["codec_name"],
        "rate": int(stream["sample_rate"]),
        "channels": int(stream["channels"]),
        "duration": float(info["format"]["duration"]),
    }


def decode_f32(path: Path, rate: int) -> np.ndarray:
    """ffmpeg's decoding of ``path`` as mono float32 at ``rate`` (no resampling when equal)."""
    out = subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(path),
         "-f", "f32le", "-ac", "1", "-ar", str(rate), "-"],
        capture_output=True, check=True,
    )  # fmt: skip
    return np.frombuffer(out.stdout, dtype="<f4")


def plausible_seconds(text: str, lang: str) -> tuple[float, float]:
    """A generous range for spoken length: 1.2-5 words/s (en), 1.5-9 syllables/s (CJK)."""
    if lang == "en":
        words = len(text.split())
        return words / 5.0, words / 1.2 + 0.8
    chars = sum(1 for ch in text if ch.isalnum())
    return chars / 9.0, chars / 1.5 + 0.8


class ToneTts(TtsEngine):
    """Test double at the engine seam: a 440 Hz tone, 0.1 s per character; counts calls."""

    name = "tone"
    offline = True

    def __init__(self, voices: dict[str, str] | None = None, rate: str = "1") -> None:
        super().__init__(voices or {"en": "tone-en", "zh": "tone-zh"}, {"rate": rate})
        self.calls = 0

    def synthesize(self, text: str, lang: str) -> Audio:
        self.calls += 1
        n = int(0.1 * len(text) * 22050)
        t = np.arange(n) / 22050
        return Audio((0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), 22050)


class DownTts(TtsEngine):
    """Test double: an engine whose service is down; counts calls."""

    name = "down"
    offline = False

    def __init__(self) -> None:
        super().__init__({"en": "down-en", "zh": "down-zh"})
        self.calls = 0

    def synthesize(self, text: str, lang: str) -> Audio:
        self.calls += 1
        raise TtsUnavailableError("service down")


@pytest.fixture(scope="session")
def piper_tts():  # type: ignore[no-untyped-def]
    """One piper engine (the model loads once) for the whole session."""
    from callsense.pipeline.tts.piper_engine import PiperTts

    return PiperTts()
