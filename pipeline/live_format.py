"""The shape of one live call's frames: rate, channels, encoding, who speaks on which channel.

Checked when the call opens, so a bad ``start`` message is refused with a clear error before
any audio is taken; ``decode`` turns the wire bytes into the float samples the pipeline uses.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import numpy as np

from callsense.core.errors import InputError
from callsense.pipeline.audio import mulaw_to_float
from callsense.pipeline.model import Speaker
from callsense.pipeline.recognizer import LANGUAGES

__all__ = ["SAMPLE_RATE", "Encoding", "StreamFormat"]

SAMPLE_RATE = 16000
Encoding = Literal["pcm16", "mulaw"]


@dataclass(frozen=True, slots=True)
class StreamFormat:
    """What the frames of one live call hold; ``roles`` overrides ``audio.channels``."""

    sample_rate: int = SAMPLE_RATE
    channels: int = 1
    encoding: Encoding = "pcm16"
    roles: Mapping[int, Speaker] | None = None
    language: str | None = None  # None: the config's recognizer.language

    def __post_init__(self) -> None:
        if self.sample_rate not in (8000, SAMPLE_RATE):
            raise InputError(f"sample_rate must be 8000 or 16000 (got {self.sample_rate})")
        if self.channels not in (1, 2):
            raise InputError(f"channels must be 1 or 2 (got {self.channels})")
        if self.encoding not in ("pcm16", "mulaw"):
            raise InputError(f"encoding must be pcm16 or mulaw (got {self.encoding!r})")
        if self.language is not None and self.language not in LANGUAGES:
            raise InputError(f"language must be one of {', '.join(LANGUAGES)}")
        for index in self.roles or {}:
            if not 0 <= index < self.channels:
                raise InputError(f"roles: channel {index} is not in a {self.channels}-channel call")

    @property
    def bytes_per_sample(self) -> int:
        return 2 if self.encoding == "pcm16" else 1

    def decode(self, raw: bytes) -> np.ndarray:
        """Float32 samples in [-1, 1] of whole frames (interleaved when stereo)."""
        if self.encoding == "pcm16":
            return np.frombuffer(raw, dtype="<i2").astype(np.float32) / 32768.0
        return mulaw_to_float(raw)
