"""The frameworks' tests share the live tests' recording (the angry call as raw frames) and
one live engine on the keyed test model: the same fixtures, imported, not rebuilt."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from callsense.pipeline.config import CallsenseConfig, load_config
from callsense.pipeline.live import LiveEngine
from tests.live.conftest import CallAudio, call_audio

__all__ = ["CallAudio", "call_audio", "customer_pcm16k", "engine"]


@pytest.fixture(scope="module")
def cfg(keyed_model_dir: Path) -> CallsenseConfig:
    return load_config(None, model=str(keyed_model_dir), environ={})


@pytest.fixture(scope="module")
def engine(cfg: CallsenseConfig, keyed_recognizer) -> Iterator[LiveEngine]:
    """One engine per module, as a bot process has one: the shared recognizer worker, the
    default policies (three angry customer utterances escalate), no TTS."""
    from callsense.pipeline.analyze import build_flow

    engine = LiveEngine(cfg, keyed_recognizer, build_flow(cfg, with_tts=False))
    yield engine
    engine.close()


@pytest.fixture(scope="session")
def customer_pcm16k(call_audio: CallAudio) -> bytes:
    """The customer's track alone (channel 0), 16 kHz mono PCM16: what a voice bot hears."""
    import numpy as np

    stereo = np.frombuffer(call_audio.pcm16k, dtype="<i2").reshape(-1, 2)
    return np.ascontiguousarray(stereo[:, 0]).tobytes()
