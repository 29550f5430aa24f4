"""The recognizer seam: audio clips in, SenseVoice rich strings (with tag confidences) out.

Backends (funasr/torch, ONNX Runtime, a test double) subclass ``Recognizer``; the config's
``recognizer.backend`` names one and ``build_recognizer`` builds it; the rest of the flow
only sees this interface.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from callsense.pipeline.model import TagConfidence

__all__ = ["LANGUAGES", "Recognition", "Recognizer", "RecognizerCapabilities", "build_recognizer"]

LANGUAGES = ("auto", "zh", "en", "yue", "ja", "ko", "nospeech")


@dataclass(frozen=True, slots=True)
class Recognition:
    """One clip's result: the exact SenseVoice string and the confidence of its tags."""

    raw: str
    confidence: TagConfidence = field(default_factory=TagConfidence)


@dataclass(frozen=True, slots=True)
class RecognizerCapabilities:
    name: str
    languages: tuple[str, ...] = LANGUAGES
    confidence: bool = False  # reports per-tag softmax probabilities
    batching: bool = False


class Recognizer(ABC):
    """Turns 16 kHz mono float32 clips into SenseVoice rich strings, one per clip, in order.

    Implementations load their model once in ``__init__`` and are shared by all calls;
    ``recognize`` is blocking (callers in async code run it in a worker thread).
    """

    capabilities: RecognizerCapabilities

    @abstractmethod
    def recognize(
        self, clips: Sequence[np.ndarray], *, language: str = "auto"
    ) -> list[Recognition]:
        """Recognize each clip; the result list has one entry per clip, same order."""

    @property
    def model_id(self) -> str:
        """What was loaded (hub id or directory), for cache keys and audit records."""
        return self.capabilities.name


def build_recognizer(config: object) -> Recognizer:
    """The backend ``config`` (a ``RecognizerConfig``) names; loaded once and shared."""
    from callsense.pipeline.sensevoice import RecognizerConfig, SenseVoiceRecognizer

    if not isinstance(config, RecognizerConfig):
        raise TypeError(f"expected RecognizerConfig, got {type(config).__name__}")
    if config.backend == "onnx":
        from callsense.pipeline.sensevoice_onnx import SenseVoiceOnnxRecognizer

        return SenseVoiceOnnxRecognizer(
            config.model,
            quantize=config.quantize,
            threads=config.ncpu,
            batch_size=config.onnx_batch,
            spinning=config.onnx_spinning is not False,
            use_itn=config.use_itn,
            ban_emo_unk=config.ban_emo_unk,
        )
    return SenseVoiceRecognizer(config)
