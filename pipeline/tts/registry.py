"""YAML engine name -> engine class, written out by hand (no plugin discovery, no import magic)."""

from __future__ import annotations

from callsense.pipeline.tts.base import TtsEngine
from callsense.pipeline.tts.config import (
    EdgeSettings,
    EngineSettings,
    EspeakSettings,
    PiperSettings,
)
from callsense.pipeline.tts.edge_engine import EdgeTts
from callsense.pipeline.tts.espeak_engine import EspeakTts
from callsense.pipeline.tts.piper_engine import PiperTts

__all__ = ["ENGINES", "build_engine"]

ENGINES: dict[str, type[TtsEngine]] = {
    "edge": EdgeTts,
    "piper": PiperTts,
    "espeak": EspeakTts,
}


def build_engine(settings: EngineSettings) -> TtsEngine:
    """An engine instance for one ``engines:`` entry (models load lazily, on first use)."""
    if isinstance(settings, EdgeSettings):
        return EdgeTts(settings)
    if isinstance(settings, PiperSettings):
        return PiperTts(settings)
    if isinstance(settings, EspeakSettings):
        return EspeakTts(settings)
    raise TypeError(f"no engine for settings {type(settings).__name__}")
