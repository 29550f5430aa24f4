"""What every TTS engine is: one ``synthesize`` method, a ``capabilities`` record, audio out.

Engines differ in where the voice comes from (a neural model on disk, a formant synthesizer,
an online service), but the rest of callsense only sees ``Audio``. The chain
(``pipeline.tts.chain``) decides which engine speaks; an engine only answers or raises.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import ClassVar

import numpy as np

from callsense.core.errors import InputError, RetryableError

__all__ = [
    "Audio",
    "EmptyTextError",
    "TtsCapabilities",
    "TtsEngine",
    "TtsUnavailableError",
    "UnsupportedLanguageError",
]


class EmptyTextError(InputError):
    """The reply has nothing to say (empty or whitespace only): no audio is made."""


class UnsupportedLanguageError(InputError):
    """No configured engine has a voice for the language: a wrong-language voice is never used."""


class TtsUnavailableError(RetryableError):
    """An engine could not speak right now (no network, timeout, missing binary or voice)."""


@dataclass(frozen=True, slots=True, eq=False)
class Audio:
    """Mono speech as float32 samples in [-1, 1] at ``sample_rate``; the array is read-only."""

    samples: np.ndarray
    sample_rate: int

    def __post_init__(self) -> None:
        if self.sample_rate <= 0:
            raise ValueError(f"sample_rate must be positive (got {self.sample_rate})")
        arr = np.asarray(self.samples, dtype=np.float32)
        if arr.ndim != 1:
            raise ValueError(f"samples must be mono (1-D), got shape {arr.shape}")
        if arr is self.samples:
            arr = arr.copy()  # never freeze an array the caller still writes to
        arr.setflags(write=False)
        object.__setattr__(self, "samples", arr)

    @property
    def duration_s(self) -> float:
        return len(self.samples) / self.sample_rate

    @classmethod
    def from_int16(cls, pcm: bytes, sample_rate: int) -> Audio:
        """Little-endian signed 16-bit mono PCM bytes, as most engines emit them."""
        if len(pcm) % 2:
            raise ValueError(f"{len(pcm)} bytes is not whole 16-bit samples")
        ints = np.frombuffer(pcm, dtype="<i2")
        return cls(ints.astype(np.float32) / 32768.0, sample_rate)


@dataclass(frozen=True, slots=True)
class TtsCapabilities:
    """What an engine can do, so the chain can skip it without trying."""

    languages: frozenset[str]
    offline: bool


class TtsEngine(ABC):
    """Base of all engines: a YAML name, voices per language, and ``synthesize``.

    ``voices`` maps a language (``en``, ``zh``, ``yue``…) to the engine's own voice id.
    ``params`` holds every other setting that changes the sound (rate, pitch, speed): the
    cache key includes it, so changing the rate never serves stale audio.
    """

    name: ClassVar[str]
    offline: ClassVar[bool]

    def __init__(self, voices: Mapping[str, str], params: Mapping[str, str] | None = None) -> None:
        self.voices: Mapping[str, str] = MappingProxyType({k.lower(): v for k, v in voices.items()})
        self.params: Mapping[str, str] = MappingProxyType(dict(params or {}))

    @property
    def capabilities(self) -> TtsCapabilities:
        return TtsCapabilities(languages=frozenset(self.voices), offline=self.offline)

    def voice_for(self, lang: str) -> str | None:
        """The voice for ``lang`` (``zh-CN`` falls back to ``zh``), or None if there is none."""
        key = lang.strip().lower()
        if key in self.voices:
            return self.voices[key]
        return self.voices.get(key.split("-", 1)[0])

    @abstractmethod
    def synthesize(self, text: str, lang: str) -> Audio:
        """Speak ``text`` in ``lang``; raise ``TtsUnavailableError`` when this engine cannot."""
