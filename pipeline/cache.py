"""Result cache: a call already transcribed with the same audio, model and settings is not
transcribed again (re-running a batch skips the work done).

The key is a SHA-256 over the audio bytes, the model id and a fingerprint of the settings
that change results, so any change to one of them is a miss, never a stale hit. Entries are
JSONL files ``<dir>/<key[:2]>/<key>.jsonl``: a header line (call id, utterance count, what is
known of the audio) and then the transcript's records in ``records.py`` shape. They are
written to a temporary file and renamed into place, so a crash leaves either the old entry or
the new one; an entry that fails to read (truncated by hand, bad JSON, wrong count) is a miss
and is deleted.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from callsense.core.errors import InputError
from callsense.pipeline.model import CallTranscript
from callsense.pipeline.records import record_from_utterance, utterance_from_record

__all__ = [
    "CACHE_FORMAT",
    "ResultCache",
    "cache_key",
    "config_fingerprint",
    "default_cache_dir",
]

logger = logging.getLogger(__name__)

CACHE_FORMAT = 1
_CHUNK = 1 << 20
_KEY_RE = re.compile(r"[0-9a-f]{64}")


def default_cache_dir(environ: Mapping[str, str] | None = None) -> Path:
    """``$CALLSENSE_CACHE_DIR``, else ``$XDG_CACHE_HOME/callsense``, else ``~/.cache/callsense``."""
    env = os.environ if environ is None else environ
    if env.get("CALLSENSE_CACHE_DIR"):
        return Path(env["CALLSENSE_CACHE_DIR"]).expanduser()
    xdg = env.get("XDG_CACHE_HOME", "")
    if xdg and Path(xdg).is_absolute():  # the XDG spec says relative values are ignored
        return Path(xdg) / "callsense"
    return Path.home() / ".cache" / "callsense"


def config_fingerprint(config: Mapping[str, Any] | BaseModel) -> str:
    """SHA-256 of the settings as canonical JSON: key order and formatting do not matter."""
    data = config.model_dump(mode="json") if isinstance(config, BaseModel) else config
    try:
        text = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    except TypeError as exc:
        raise InputError(f"cache: config is not JSON-serialisable: {exc}") from None
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def cache_key(
    audio: Path | bytes, model_id: str, config: Mapping[str, Any] | BaseModel | str
) -> str:
    """The cache key of one call; ``audio`` is a file (read in 1 MiB chunks) or its bytes.

    ``config`` is the part of the configuration that changes results (or its fingerprint).
    """
    fingerprint = config if isinstance(config, str) else config_fingerprint(config)
    digest = hashlib.sha256()
    digest.update(f"callsense-cache-v{CACHE_FORMAT}\0{model_id}\0{fingerprint}\0".encode())
    if isinstance(audio, bytes):
        digest.update(audio)
    else:
        try:
            with open(audio, "rb") as fh:
                while chunk := fh.read(_CHUNK):
                    digest.update(chunk)
        except OSError as exc:
            raise InputError(f"{audio}: cannot read: {exc.strerror or exc}") from None
    return digest.hexdigest()


class ResultCache:
    """Transcripts on disk by key; safe against crashes and concurrent writers of one key."""

    def __init__(self, directory: Path | str | None = None) -> None:
        self.directory = Path(directory) if directory is not None else default_cache_dir()

    def path(self, key: str) -> Path:
        if not _KEY_RE.fullmatch(key):
            raise ValueError(f"not a cache key (64 lowercase hex digits): {key!r}")
        return self.directory / key[:2] / f"{key}.jsonl"

    def get(self, key: str, *, call_id: str | None = None) -> CallTranscript | None:
        """The cached transcript, or None on a miss; ``call_id`` renames the call (the same
        audio may come back under another file name)."""
        path = self.path(key)
        try:
            blob = path.read_bytes()
        except FileNotFoundError:
            return None
        try:
            transcript = _decode(blob, str(path))
        except (ValueError, InputError, KeyError, TypeError) as exc:
            logger.warning("cache entry %s unreadable (%s); removed", key, type(exc).__name__)
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
            return None
        if call_id is not None and call_id != transcript.call_id:
            transcript = replace(
                transcript,
                call_id=call_id,
                utterances=tuple(replace(u, call_id=call_id) for u in transcript.utterances),
            )
        return transcript

    def put(self, key: str, transcript: CallTranscript) -> Path:
        """Store ``transcript`` under ``key`` atomically; returns the entry's path."""
        path = self.path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        header = {
            "callsense_cache": CACHE_FORMAT,
            "call_id": transcript.call_id,
            "utterances": len(transcript.utterances),
            "duration": transcript.duration,
            "channels": transcript.channels,
            "source": transcript.source,
        }
        lines = [header, *(record_from_utterance(u) for u in transcript.utterances)]
        payload = "".join(json.dumps(x, ensure_ascii=False, allow_nan=False) + "\n" for x in lines)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{key[:8]}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(payload)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        return path

    def delete(self, key: str) -> bool:
        """Remove one entry; False if there was none."""
        try:
            self.path(key).unlink()
        except FileNotFoundError:
            return False
        return True

    def remove_call(self, call_id: str) -> int:
        """Remove every entry of ``call_id`` (a purge request); returns how many were removed.

        Reads only each entry's header line, so it is cheap even for a large cache.
        """
        removed = 0
        for path in self._entries():
            try:
                with path.open("rb") as fh:
                    header = json.loads(fh.readline())
                owner = header.get("call_id") if isinstance(header, dict) else None
            except (OSError, ValueError):
                continue
            if owner == call_id:
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
                    removed += 1
        return removed

    def _entries(self) -> Iterator[Path]:
        if not self.directory.is_dir():
            return
        for sub in sorted(self.directory.iterdir()):
            if sub.is_dir() and len(sub.name) == 2:
                yield from sorted(p for p in sub.glob("*.jsonl") if _KEY_RE.fullmatch(p.stem))


def _decode(blob: bytes, name: str) -> CallTranscript:
    lines = blob.decode("utf-8").splitlines()
    if not lines:
        raise ValueError("empty entry")
    header = json.loads(lines[0])
    if not isinstance(header, dict) or header.get("callsense_cache") != CACHE_FORMAT:
        raise ValueError("not a cache entry of this version")
    if not isinstance(header.get("call_id"), str) or not isinstance(header.get("utterances"), int):
        raise ValueError("malformed header")
    records = lines[1:]
    if len(records) != header["utterances"]:
        raise ValueError("utterance count does not match the header")
    utterances = tuple(
        utterance_from_record(json.loads(line), file=name, line=number)
        for number, line in enumerate(records, start=2)
    )
    return CallTranscript(
        call_id=header["call_id"],
        utterances=utterances,
        duration=header.get("duration"),
        channels=header.get("channels"),
        source=header.get("source"),
    )
