"""On-disk cache of finished reply files, so a repeated line ("please hold") is not re-synthesized.

The key hashes engine, voice, the sound-changing params, output format and the text (SHA-256),
so file names reveal nothing of the reply. Writes are atomic (temp file + rename): a crash or
two workers writing the same entry never leave a half file that a later call would play.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping
from pathlib import Path

from callsense.pipeline.tts.encode import OutputFormat, write_atomic

__all__ = ["TtsCache", "cache_key"]

log = logging.getLogger("callsense.tts")

_KEY_VERSION = 1  # bump when encoding changes so old entries are not served


def cache_key(
    engine: str, voice: str, params: Mapping[str, str], fmt: OutputFormat, text: str
) -> str:
    """Hex SHA-256 of everything that decides the bytes of the reply file."""
    material = json.dumps(
        {
            "v": _KEY_VERSION,
            "engine": engine,
            "voice": voice,
            "params": dict(sorted(params.items())),
            "format": fmt.value,
            "text": text,
        },
        ensure_ascii=False,
        sort_keys=True,
    )
    return hashlib.sha256(material.encode("utf-8")).hexdigest()


class TtsCache:
    """Reply files under ``root/<2 hex>/<key>.<fmt>.wav``."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def path_for(self, key: str, fmt: OutputFormat) -> Path:
        return self.root / key[:2] / f"{key}.{fmt.value}.wav"

    def get(self, key: str, fmt: OutputFormat) -> bytes | None:
        try:
            return self.path_for(key, fmt).read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:  # an unreadable cache is a miss, not a failed reply
            log.warning("tts cache read failed", extra={"tts_error": type(exc).__name__})
            return None

    def put(self, key: str, fmt: OutputFormat, data: bytes) -> Path | None:
        try:
            return write_atomic(self.path_for(key, fmt), data)
        except OSError as exc:  # a full or read-only disk must not cost the caller its reply
            log.warning("tts cache write failed", extra={"tts_error": type(exc).__name__})
            return None
