"""``FallbackTts``: the TTS stage. Tries engines in order, caches reply files, never logs text.

Order of work for one reply:
1. empty text -> ``EmptyTextError``; a language no engine has a voice for ->
   ``UnsupportedLanguageError`` (a Chinese reply read by an English voice is noise, so no
   engine's "default" voice is ever substituted: the dialogue must pick a configured language);
2. the cache is checked for every capable engine, in chain order, before any engine runs: a
   reply made earlier by the offline fallback is served rather than waiting on the network;
3. engines run in order; ``TtsUnavailableError`` from one moves on to the next, and only when
   all fail does the caller get ``TtsUnavailableError`` listing each engine's reason.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from callsense.pipeline.tts.base import (
    Audio,
    EmptyTextError,
    TtsEngine,
    TtsUnavailableError,
    UnsupportedLanguageError,
)
from callsense.pipeline.tts.cache import TtsCache, cache_key
from callsense.pipeline.tts.config import TtsConfig, default_cache_dir
from callsense.pipeline.tts.encode import OutputFormat, encode, wav_duration, write_atomic

__all__ = ["FallbackTts", "TtsResult"]

log = logging.getLogger("callsense.tts")


@dataclass(frozen=True, slots=True)
class TtsResult:
    """One spoken reply: file bytes in ``fmt``, who made them, and who could not (``failures``)."""

    data: bytes
    fmt: OutputFormat
    engine: str
    voice: str
    lang: str
    duration_s: float
    cached: bool
    failures: tuple[str, ...] = ()


class FallbackTts:
    """Engines in priority order plus an optional cache; ``speak`` is the one call a stage needs."""

    def __init__(self, engines: Sequence[TtsEngine], cache: TtsCache | None = None) -> None:
        if not engines:
            raise ValueError("FallbackTts needs at least one engine")
        self.engines = tuple(engines)
        self.cache = cache

    @classmethod
    def from_config(cls, config: TtsConfig | None = None) -> FallbackTts:
        from callsense.pipeline.tts.registry import build_engine

        config = config or TtsConfig()
        cache = None
        if config.cache.enabled:
            cache = TtsCache(config.cache.dir or default_cache_dir())
        return cls([build_engine(e) for e in config.engines], cache)

    @property
    def languages(self) -> frozenset[str]:
        """Every language some engine in the chain has a voice for."""
        return frozenset().union(*(e.capabilities.languages for e in self.engines))

    def speak(self, text: str, lang: str, fmt: OutputFormat = OutputFormat.WAV16K) -> TtsResult:
        """The reply as file bytes in ``fmt``, from the cache or the first engine that answers."""
        text = text.strip()
        if not text:
            raise EmptyTextError("nothing to say: the reply text is empty")
        capable = [(e, v) for e in self.engines if (v := e.voice_for(lang)) is not None]
        if not capable:
            known = ", ".join(sorted(self.languages))
            raise UnsupportedLanguageError(
                f"no TTS voice for language {lang!r}; configured languages: {known}"
            )
        keys = [cache_key(e.name, v, e.params, fmt, text) for e, v in capable]
        if self.cache is not None:
            for (engine, voice), key in zip(capable, keys, strict=True):
                data = self.cache.get(key, fmt)
                if data is not None:
                    return self._done(data, fmt, engine.name, voice, lang, len(text), True, ())
        failures: list[str] = []
        for (engine, voice), key in zip(capable, keys, strict=True):
            try:
                audio = engine.synthesize(text, lang)
            except TtsUnavailableError as exc:
                failures.append(f"{engine.name}: {exc}")
                log.warning("tts engine %s (voice %s) unavailable: %s", engine.name, voice, exc)
                continue
            data = encode(audio, fmt)
            if self.cache is not None:
                self.cache.put(key, fmt, data)
            return self._done(data, fmt, engine.name, voice, lang, len(text), False, failures)
        raise TtsUnavailableError(
            f"no TTS engine could speak ({len(failures)} tried): " + "; ".join(failures)
        )

    def save(
        self,
        text: str,
        lang: str,
        path: str | os.PathLike[str],
        fmt: OutputFormat = OutputFormat.WAV16K,
    ) -> TtsResult:
        """``speak`` and write the file atomically to ``path``."""
        result = self.speak(text, lang, fmt)
        write_atomic(Path(path), result.data)
        return result

    def synthesize(self, text: str, lang: str) -> Audio:
        """Raw audio from the first engine that answers (no cache: use ``speak`` for files)."""
        text = text.strip()
        if not text:
            raise EmptyTextError("nothing to say: the reply text is empty")
        failures: list[str] = []
        for engine in self.engines:
            if engine.voice_for(lang) is None:
                continue
            try:
                return engine.synthesize(text, lang)
            except TtsUnavailableError as exc:
                failures.append(f"{engine.name}: {exc}")
        if not failures:
            raise UnsupportedLanguageError(f"no TTS voice for language {lang!r}")
        raise TtsUnavailableError("no TTS engine could speak: " + "; ".join(failures))

    @staticmethod
    def _done(
        data: bytes,
        fmt: OutputFormat,
        engine: str,
        voice: str,
        lang: str,
        chars: int,
        cached: bool,
        failures: Sequence[str],
    ) -> TtsResult:
        duration = wav_duration(data)
        log.info(
            "tts reply: engine=%s voice=%s lang=%s chars=%d audio=%.2fs format=%s cached=%s",
            engine,
            voice,
            lang,
            chars,
            duration,
            fmt.value,
            cached,
        )
        return TtsResult(data, fmt, engine, voice, lang, duration, cached, tuple(failures))
