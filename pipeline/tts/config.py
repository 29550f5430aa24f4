"""The ``tts:`` configuration: which engines to try in which order, their voices and limits.

A plain engine name in ``engines`` takes that engine's defaults, so the short form
``engines: [edge, piper, espeak]`` is valid; a mapping with ``engine:`` overrides settings.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = [
    "CacheSettings",
    "EdgeSettings",
    "EngineSettings",
    "EspeakSettings",
    "PiperSettings",
    "TtsConfig",
    "default_cache_dir",
    "load_tts_config",
]

# SenseVoice's languages (zh en yue ja ko) get a voice wherever the engine has one.
DEFAULT_EDGE_VOICES = {
    "en": "en-US-AriaNeural",
    "zh": "zh-CN-XiaoxiaoNeural",
    "yue": "zh-HK-HiuMaanNeural",
    "ja": "ja-JP-NanamiNeural",
    "ko": "ko-KR-SunHiNeural",
}
DEFAULT_PIPER_VOICES = {"en": "en_US-joe-medium"}
DEFAULT_ESPEAK_VOICES = {"en": "en-us", "zh": "cmn", "yue": "yue", "ja": "ja", "ko": "ko"}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _langs_lower(voices: dict[str, str]) -> dict[str, str]:
    for lang, voice in voices.items():
        if not lang.strip() or not voice.strip():
            raise ValueError("language and voice must be non-empty")
    return {k.strip().lower(): v.strip() for k, v in voices.items()}


class EdgeSettings(_Strict):
    """edge-tts, the online neural voices; fails fast and falls back when offline."""

    engine: Literal["edge"] = "edge"
    voices: dict[str, str] = Field(default_factory=lambda: dict(DEFAULT_EDGE_VOICES))
    rate: str = Field(default="+0%", description="speaking rate change, e.g. -10%")
    volume: str = Field(default="+0%", description="volume change, e.g. +20%")
    pitch: str = Field(default="+0Hz", description="pitch change, e.g. +5Hz")
    connect_timeout_s: int = Field(default=3, ge=1, le=60, description="TCP/TLS connect limit")
    timeout_s: float = Field(default=10.0, gt=0, le=300, description="whole request limit")
    proxy: str | None = Field(default=None, description="http(s) proxy URL; env proxies apply too")

    _norm = field_validator("voices")(_langs_lower)

    @field_validator("rate", "volume")
    @classmethod
    def _percent(cls, value: str) -> str:
        if not re.fullmatch(r"[+-]\d+%", value):
            raise ValueError("must be a signed percentage such as +10% or -5%")
        return value

    @field_validator("pitch")
    @classmethod
    def _hertz(cls, value: str) -> str:
        if not re.fullmatch(r"[+-]\d+Hz", value):
            raise ValueError("must be signed hertz such as +5Hz or -10Hz")
        return value


class PiperSettings(_Strict):
    """Piper offline neural voices: a packaged voice name or a path to a ``.onnx`` model."""

    engine: Literal["piper"] = "piper"
    voices: dict[str, str] = Field(default_factory=lambda: dict(DEFAULT_PIPER_VOICES))
    voice_dirs: list[Path] = Field(default_factory=list, description="where <voice>.onnx lives")
    length_scale: float = Field(default=1.0, gt=0.2, le=5.0, description=">1 speaks slower")

    _norm = field_validator("voices")(_langs_lower)


class EspeakSettings(_Strict):
    """espeak-ng (Debian package), robotic but always there and fluent in zh/yue/ja/ko."""

    engine: Literal["espeak"] = "espeak"
    voices: dict[str, str] = Field(default_factory=lambda: dict(DEFAULT_ESPEAK_VOICES))
    speed_wpm: int = Field(default=165, ge=80, le=450)
    binary: str = "espeak-ng"
    timeout_s: float = Field(default=30.0, gt=0)

    _norm = field_validator("voices")(_langs_lower)


EngineSettings = Annotated[
    EdgeSettings | PiperSettings | EspeakSettings, Field(discriminator="engine")
]


class CacheSettings(_Strict):
    enabled: bool = True
    dir: Path | None = Field(
        default=None, description="default: $CALLSENSE_CACHE_DIR/tts or XDG cache"
    )


def _default_engines() -> list[EngineSettings]:
    return [EdgeSettings(), PiperSettings(), EspeakSettings()]


class TtsConfig(_Strict):
    """Engines in the order they are tried; the first that has a voice and answers wins."""

    engines: list[EngineSettings] = Field(
        default_factory=_default_engines,
        min_length=1,
    )
    cache: CacheSettings = Field(default_factory=lambda: CacheSettings())

    @field_validator("engines", mode="before")
    @classmethod
    def _short_names(cls, value: Any) -> Any:
        if isinstance(value, list):
            return [{"engine": v} if isinstance(v, str) else v for v in value]
        return value

    @field_validator("engines")
    @classmethod
    def _unique(cls, value: list[EngineSettings]) -> list[EngineSettings]:
        names = [e.engine for e in value]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"engine listed twice: {', '.join(dupes)}")
        return value


def default_cache_dir() -> Path:
    """``$CALLSENSE_CACHE_DIR/tts``, else ``$XDG_CACHE_HOME/callsense/tts``, else ``~/.cache``."""
    own = os.environ.get("CALLSENSE_CACHE_DIR")
    if own:
        return Path(own) / "tts"
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg) if xdg else Path.home() / ".cache"
    return base / "callsense" / "tts"


def load_tts_config(path: str | os.PathLike[str]) -> TtsConfig:
    """Read a YAML file holding the ``tts`` settings (top level or under a ``tts:`` key)."""
    from callsense.core.yamlsource import Located, load_yaml, validate_data

    src = load_yaml(Path(path))
    if isinstance(src.data, dict) and set(src.data) == {"tts"}:
        lines = {k[1:]: v for k, v in src.lines.items() if k[:1] == ("tts",)}
        src = Located(data=src.data["tts"], file=src.file, lines=lines)
    return validate_data(TtsConfig, src)
