"""The TTS stage: reply text -> speech audio, via a fallback chain of engines.

``FallbackTts.from_config(load_tts_config(path)).speak(text, lang)`` is the whole API a
caller needs. Engine modules import their heavy libraries (piper, edge_tts) only when they
first speak, so importing this package stays cheap.
"""

from __future__ import annotations

from callsense.pipeline.tts.base import (
    Audio,
    EmptyTextError,
    TtsCapabilities,
    TtsEngine,
    TtsUnavailableError,
    UnsupportedLanguageError,
)
from callsense.pipeline.tts.cache import TtsCache, cache_key
from callsense.pipeline.tts.chain import FallbackTts, TtsResult
from callsense.pipeline.tts.config import TtsConfig, default_cache_dir, load_tts_config
from callsense.pipeline.tts.encode import (
    OutputFormat,
    mulaw_encode,
    to_mulaw8k,
    to_wav16k,
    write_audio,
)
from callsense.pipeline.tts.registry import ENGINES, build_engine

__all__ = [
    "ENGINES",
    "Audio",
    "EmptyTextError",
    "FallbackTts",
    "OutputFormat",
    "TtsCache",
    "TtsCapabilities",
    "TtsConfig",
    "TtsEngine",
    "TtsResult",
    "TtsUnavailableError",
    "UnsupportedLanguageError",
    "build_engine",
    "cache_key",
    "default_cache_dir",
    "load_tts_config",
    "mulaw_encode",
    "to_mulaw8k",
    "to_wav16k",
    "write_audio",
]
