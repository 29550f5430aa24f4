"""Test recognizers for the Ray tier: real ``Recognizer`` subclasses, loaded by factory name.

Ray workers import them by module path (``tests.ray.helpers:...``), so they live in a
module, not in a test file. Each records its forward passes in a file named by an
environment variable, which is how tests see work done in other processes.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from callsense.pipeline.model import TagConfidence
from callsense.pipeline.recognizer import Recognition, Recognizer, RecognizerCapabilities
from callsense.pipeline.sensevoice import RecognizerConfig, SenseVoiceRecognizer

__all__ = [
    "LoudnessRecognizer",
    "counting_sensevoice",
    "loudness",
    "loudness_factory",
    "read_counter",
]

COUNTER_ENV = "CALLSENSE_TEST_COUNTER"
DELAY_ENV = "CALLSENSE_TEST_DELAY_S"
FIRST_DELAY_ENV = "CALLSENSE_TEST_FIRST_DELAY_S"
BUSY_DIR_ENV = "CALLSENSE_TEST_BUSY_DIR"


@contextmanager
def _busy() -> Iterator[None]:
    """While a forward pass runs, ``$CALLSENSE_TEST_BUSY_DIR/<node id>`` exists: a test can
    wait until a given node has work in flight before it removes that node."""
    where = os.environ.get(BUSY_DIR_ENV)
    if not where:
        yield
        return
    import ray

    marker = Path(where) / ray.get_runtime_context().get_node_id()
    marker.touch()
    try:
        yield
    finally:
        marker.unlink(missing_ok=True)


def _record(clips: Sequence[np.ndarray]) -> None:
    path = os.environ.get(COUNTER_ENV)
    if not path:
        return
    digest = hashlib.sha1()
    for clip in clips:
        digest.update(np.ascontiguousarray(clip, dtype=np.float32).tobytes())
    with open(path, "a", encoding="utf-8") as fh:  # one short append per pass: atomic enough
        fh.write(f"{os.getpid()} {len(clips)} {digest.hexdigest()}\n")


def read_counter(path: Path) -> list[tuple[int, int, str]]:
    """(pid, clips, digest of the clips) per recognize() call."""
    if not path.exists():
        return []
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        pid, n, digest = line.split()
        rows.append((int(pid), int(n), digest))
    return rows


class LoudnessRecognizer(Recognizer):
    """Deterministic and model-free: loud clips are ANGRY, quiet ones NEUTRAL.

    Stands in for SenseVoice where a test is about distribution, not recognition; the
    delay (``CALLSENSE_TEST_DELAY_S``) gives it a model's latency.
    """

    def __init__(self, config: RecognizerConfig | None = None) -> None:
        self.capabilities = RecognizerCapabilities(name="loudness-test", confidence=True)
        self.delay_s = float(os.environ.get(DELAY_ENV, "0"))
        self.first_delay_s = float(os.environ.get(FIRST_DELAY_ENV, "0"))
        self.calls = 0

    def recognize(
        self, clips: Sequence[np.ndarray], *, language: str | None = "auto"
    ) -> list[Recognition]:
        _record(clips)
        self.calls += 1
        delay = self.first_delay_s if self.calls == 1 and self.first_delay_s else self.delay_s
        with _busy():
            if delay:
                time.sleep(delay)
            return [loudness(c) for c in clips]


def loudness(clip: np.ndarray) -> Recognition:
    rms = float(np.sqrt(np.mean(np.square(clip, dtype=np.float64)))) if clip.size else 0.0
    emotion = "ANGRY" if rms > 0.05 else "NEUTRAL"
    conf = round(min(1.0, 0.5 + rms), 4)
    return Recognition(
        raw=f"<|en|><|{emotion}|><|Speech|><|withitn|>Yes.",
        confidence=TagConfidence(0.99, conf, 0.98),
    )


class _CountingSenseVoice(SenseVoiceRecognizer):
    def recognize(
        self, clips: Sequence[np.ndarray], *, language: str | None = None
    ) -> list[Recognition]:
        _record(clips)
        delay = float(os.environ.get(DELAY_ENV, "0"))
        if delay:
            time.sleep(delay)
        return super().recognize(clips, language=language)


def counting_sensevoice(config: RecognizerConfig) -> SenseVoiceRecognizer:
    """The real SenseVoice recognizer, counting its calls (factory for ray.yaml)."""
    return _CountingSenseVoice(config)


def loudness_factory(config: RecognizerConfig) -> LoudnessRecognizer:
    return LoudnessRecognizer(config)
