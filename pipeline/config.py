"""The main configuration (``configs/callsense.yaml``): one pydantic model, one loader.

Every section has defaults that work with no file at all; a file only says what differs.
Errors name the file, the line and the field (``core.yamlsource``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from callsense.configs import shipped
from callsense.core.yamlsource import load_yaml, validate_data
from callsense.pipeline.audio import AudioConfig
from callsense.pipeline.compliance import ComplianceConfig
from callsense.pipeline.redact import RedactionConfig
from callsense.pipeline.segmentation import SegmentationConfig
from callsense.pipeline.sensevoice import RecognizerConfig
from callsense.pipeline.tts.config import TtsConfig
from callsense.pipeline.vad import VadConfig

__all__ = [
    "CacheConfig",
    "CallsenseConfig",
    "ConfidenceConfig",
    "load_config",
]

ENV_MODEL = "CALLSENSE_MODEL"
ENV_VAD_MODEL = "CALLSENSE_VAD_MODEL"
ENV_CONFIG = "CALLSENSE_CONFIG"


class ConfidenceConfig(BaseModel):
    """Below these softmax probabilities a tag abstains (EMO_UNKNOWN / Event_UNK)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    emotion_min: float = Field(0.0, ge=0.0, le=1.0)
    event_min: float = Field(0.0, ge=0.0, le=1.0)


class CacheConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = True
    dir: Path | None = Field(
        None, description="default: $CALLSENSE_CACHE_DIR or ~/.cache/callsense"
    )


class CallsenseConfig(BaseModel):
    """Everything ``callsense`` reads from YAML; sections are owned by their stage's module."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    recognizer: RecognizerConfig = Field(default_factory=RecognizerConfig)
    vad: VadConfig = Field(default_factory=VadConfig)
    segmentation: SegmentationConfig = Field(default_factory=SegmentationConfig)
    audio: AudioConfig = Field(default_factory=AudioConfig)
    confidence: ConfidenceConfig = Field(default_factory=ConfidenceConfig)
    cache: CacheConfig = Field(default_factory=CacheConfig)
    compliance: ComplianceConfig = Field(default_factory=ComplianceConfig)
    redaction: RedactionConfig = Field(default_factory=RedactionConfig)
    policies: list[Path] = Field(
        default_factory=lambda: [shipped("policies/default.yaml")],
        description="escalation policy files, loaded together",
    )
    policy_engine: Literal["python", "durable"] = Field(
        "python", description="rules backend; both give identical decisions"
    )
    intents: Path = Field(shipped("intents.yaml"), description="NLU hooks and intents")
    dialogue: Path = Field(shipped("dialogue.yaml"), description="dialogue flow")
    tts: TtsConfig = Field(default_factory=TtsConfig)

    def decisions_fingerprint(self) -> dict[str, Any]:
        """The settings that change a call's decisions (the audit's ``config_hash``): the
        transcript's, and how it is read. Not where results are cached or sent."""
        return {
            **self.results_fingerprint(),
            "compliance": self.compliance.model_dump(mode="json"),
            "policy_engine": self.policy_engine,
            "intents": str(self.intents),
            "dialogue": str(self.dialogue),
        }

    def results_fingerprint(self) -> dict[str, Any]:
        """The settings that change a transcript (the result cache's key includes them)."""
        return {
            "recognizer": self.recognizer.model_dump(
                mode="json", exclude={"ncpu", "device", "onnx_spinning"}
            ),
            "vad": self.vad.model_dump(mode="json", exclude={"device"}),
            "segmentation": self.segmentation.model_dump(mode="json"),
            "audio": self.audio.model_dump(mode="json", exclude={"timeout_s", "ffmpeg", "ffprobe"}),
            "confidence": self.confidence.model_dump(mode="json"),
            "redaction": self.redaction.model_dump(mode="json", exclude={"original_key_env"}),
            "compliance": self.compliance.model_dump(
                mode="json", include={"emotion", "agent_emotion"}
            ),
        }


C = TypeVar("C", bound=CallsenseConfig)


def load_config(
    path: str | Path | None = None,
    *,
    model: str | None = None,
    vad_model: str | None = None,
    environ: dict[str, str] | None = None,
    schema: type[C] = CallsenseConfig,  # type: ignore[assignment]
) -> C:
    """Load ``path`` (or $CALLSENSE_CONFIG, or defaults), then apply overrides.

    Precedence for the model: ``model`` argument (``--model``) > $CALLSENSE_MODEL > file.
    A model directory that holds a ``vad/`` folder brings its own VAD model (test bundles
    built by ``tools/make_test_model.py`` do), unless the VAD model is set explicitly.
    """
    env = os.environ if environ is None else environ
    path = path or env.get(ENV_CONFIG) or None
    if path is not None:
        src = load_yaml(path)
        base = Path(path).resolve().parent
        _resolve_file_keys(src.data, base)
        cfg = validate_data(schema, src)
        cfg = cfg.model_copy(
            update={
                "policies": [_resolve_path(p, base) for p in cfg.policies],
                "intents": _resolve_path(cfg.intents, base),
                "dialogue": _resolve_path(cfg.dialogue, base),
            }
        )
    else:
        cfg = schema()
        base = Path.cwd()
    model = model or env.get(ENV_MODEL) or None
    if model is not None:
        cfg = cfg.model_copy(
            update={"recognizer": cfg.recognizer.model_copy(update={"model": model})}
        )
    elif path is not None:
        cfg = cfg.model_copy(
            update={
                "recognizer": cfg.recognizer.model_copy(
                    update={"model": _resolve(cfg.recognizer.model, base)}
                )
            }
        )
    vad_explicit = vad_model or env.get(ENV_VAD_MODEL) or None
    if vad_explicit is None and "model" in cfg.vad.model_fields_set and path is not None:
        vad_explicit = _resolve(cfg.vad.model, base)
    if vad_explicit is None:
        bundled = Path(cfg.recognizer.model) / "vad"
        if bundled.is_dir():
            vad_explicit = str(bundled)
    if vad_explicit is not None:
        cfg = cfg.model_copy(update={"vad": cfg.vad.model_copy(update={"model": vad_explicit})})
    return cfg


def _resolve(value: str, base: Path) -> str:
    """A relative path in a config file is relative to that file, if it exists there."""
    candidate = base / value
    if not Path(value).is_absolute() and candidate.exists():
        return str(candidate)
    return value


def _resolve_file_keys(data: object, base: Path) -> None:
    """Other file and directory keys, made relative to the config file before validation
    (a webhook's ``ca_file`` is checked while it loads): cache dirs, piper voice dirs, a
    webhook's template file and CA bundle, a relative SQLite ``outbox.db_url``."""
    if not isinstance(data, dict):
        return

    def fix(holder: object, key: str) -> None:
        if isinstance(holder, dict) and isinstance(holder.get(key), str) and holder[key]:
            value = holder[key]
            if not Path(value).expanduser().is_absolute() and not value.startswith("~"):
                holder[key] = str(base / value)

    fix(data.get("cache"), "dir")
    tts = data.get("tts")
    if isinstance(tts, dict):
        fix(tts.get("cache"), "dir")
        for engine in tts.get("engines") or []:
            if isinstance(engine, dict) and isinstance(engine.get("voice_dirs"), list):
                dirs = engine["voice_dirs"]
                for i, d in enumerate(dirs):
                    if isinstance(d, str) and d and not Path(d).is_absolute() and d[:1] != "~":
                        dirs[i] = str(base / d)
    for hook in data.get("webhooks") or []:
        if not isinstance(hook, dict):
            continue
        fix(hook, "ca_file")
        template = hook.get("template")
        if isinstance(template, str) and ("/" in template or template.endswith((".yaml", ".yml"))):
            fix(hook, "template")
    outbox = data.get("outbox")
    if isinstance(outbox, dict) and isinstance(outbox.get("db_url"), str):
        url = outbox["db_url"]
        prefix = "sqlite:///"
        rest = url[len(prefix) :] if url.startswith(prefix) else ""
        if rest and rest != ":memory:" and not rest.startswith("/"):
            outbox["db_url"] = prefix + str(base / rest)


def _resolve_path(value: Path, base: Path) -> Path:
    return value if value.is_absolute() else (base / value)
