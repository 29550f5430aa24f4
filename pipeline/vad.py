"""Voice activity: which spans of a channel hold speech or another sound worth recognizing.

The default engine is FunASR's FSMN-VAD, because it lets non-speech sounds through
(laughter, crying, music, a dog bark): SenseVoice can only tag Laughter, Cry or BGM if it is
given those spans. silero-vad is kept as an option; it is a speech detector and drops most
of them (see tests/audio/test_vad_manifest.py for the numbers on ../shared/testdata).

Each segment is then marked ``speech`` or ``sound`` from silero's frame probabilities,
weighted by frame energy, so the loud part of a segment decides and the silence FSMN-VAD
keeps around an utterance does not dilute it. The threshold leans toward ``speech``
(silero scores shouted, angry speech lower than calm speech, and calling speech a sound
would hide it from the rules); the orchestrator also overrides ``source`` with SenseVoice's
own event tag when the recognizer says a segment holds no speech. Without the silero-vad
package, segments are left ``speech`` with ``speech_prob=None``.
"""

from __future__ import annotations

import functools
import logging
import os
import queue
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from pipeline.audio import SAMPLE_RATE, resample
from pipeline.model import Segment, Source
from pipeline.quiet import import_funasr, quiet
from rules.errors import ConfigError

__all__ = [
    "DEFAULT_FSMN_MODEL",
    "VADS",
    "FsmnPool",
    "FsmnVad",
    "SileroVad",
    "SpeechScorer",
    "Vad",
    "VadCapabilities",
    "VadConfig",
    "build_vad",
]

log = logging.getLogger(__name__)

DEFAULT_FSMN_MODEL = "fsmn-vad"  # funasr's alias of iic/speech_fsmn_vad_zh-cn-16k-common-pytorch
_SILERO_FRAME = 512  # samples per silero-vad frame at 16 kHz (32 ms)
_SILERO_CONTEXT = 64  # samples of the previous frame each silero frame sees
_WARMUP_FRAMES = 16  # 0.5 s of context before a segment when scoring it alone


class VadConfig(BaseModel):
    """``vad:`` in YAML. The fsmn_* fields override the model's own config.yaml values."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    engine: Literal["fsmn", "silero"] = "fsmn"
    model: str = Field(
        default=DEFAULT_FSMN_MODEL,
        description="fsmn: a hub id (downloaded by funasr) or a local model directory",
    )
    device: str = "cpu"
    speech_prob_threshold: float = Field(
        default=0.5, ge=0.0, le=1.0, description="segments scoring at least this are 'speech'"
    )
    speech_scoring: Literal["channel", "segments"] = Field(
        default="channel",
        description="silero over the whole channel (best speech/sound marking; runs alongside "
        "FSMN-VAD) or only over the segments (fewer CPU-seconds on calls with many pauses, "
        "but after FSMN, so no faster on 2+ cores; weaker on music)",
    )
    max_single_segment_s: float = Field(default=60.0, gt=0, description="VAD-level hard cut")
    fsmn_max_end_silence_s: float | None = Field(
        default=0.8,
        gt=0,
        description="silence that ends a segment; None: funasr's schedule (2 s falling to 0.1 s)",
    )
    fsmn_speech_noise_thres: float = Field(default=0.6, ge=-1.0, le=1.0)
    silero_threshold: float = Field(
        default=0.5, gt=0.0, lt=1.0, description="silero frame threshold"
    )
    silero_min_silence_s: float = Field(default=0.1, ge=0)
    silero_min_speech_s: float = Field(default=0.25, ge=0)


@dataclass(frozen=True, slots=True)
class VadCapabilities:
    name: str
    passes_sounds: bool  # returns segments for laughter, music, crying, not only speech


class Vad(ABC):
    """Finds the segments of one channel; loads its model once and is shared by all calls."""

    capabilities: ClassVar[VadCapabilities]

    def __init__(self, cfg: VadConfig | None = None) -> None:
        self.cfg = cfg or VadConfig()

    @abstractmethod
    def segments(
        self, samples: np.ndarray, sample_rate: int = SAMPLE_RATE, *, channel: int = 0
    ) -> list[Segment]:
        """Segments of ``samples`` (mono float32) in time order, marked speech or sound."""


@functools.cache
def _silero_model() -> Any:
    """silero-vad's model (weights ship in its wheel), loaded once per process.

    The ONNX copy when onnxruntime is there: same probabilities (within 1e-6), several
    times faster than the TorchScript one on a busy 2-core machine.
    """
    from silero_vad import load_silero_vad

    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return load_silero_vad()
    return load_silero_vad(onnx=True)


@functools.cache
def _scoring_pool() -> ThreadPoolExecutor:
    """Threads that score channels with silero while FSMN-VAD segments them."""
    return ThreadPoolExecutor(os.cpu_count() or 1, thread_name_prefix="callsense-silero")


def _silero_available() -> bool:
    try:
        import silero_vad  # noqa: F401
    except ImportError:
        return False
    return True


class SpeechScorer:
    """Speech probability of a span: silero frame probabilities, weighted by frame energy."""

    def __init__(self, threshold: float = 0.5) -> None:
        self.threshold = threshold
        self._lock = threading.Lock()
        self.available = _silero_available()
        if not self.available:
            log.warning("silero-vad not installed: VAD segments are all marked 'speech'")

    def frame_probs(self, samples: np.ndarray) -> np.ndarray:
        """One probability per 32 ms frame of 16 kHz ``samples``."""
        import torch

        if samples.size == 0:
            return np.zeros(0, dtype=np.float32)
        model = _silero_model()
        session = getattr(model, "session", None)
        if session is not None:
            return _onnx_frame_probs(session, samples)
        x = torch.from_numpy(np.array(samples, dtype=np.float32))
        with self._lock, torch.inference_mode():
            probs = model.audio_forward(x, SAMPLE_RATE)
        out: np.ndarray = probs[0].numpy().astype(np.float32)
        return out

    def mark(
        self,
        segments: Sequence[Segment],
        samples: np.ndarray,
        *,
        per_segment: bool = False,
        scoring: Future[np.ndarray] | None = None,
    ) -> list[Segment]:
        """Fill ``speech_prob`` and ``source`` for segments of the 16 kHz channel ``samples``.

        ``per_segment`` scores only the segments (each after 0.5 s of context), not the
        silence between them. ``scoring``: the channel's ``frame_probs``, already under way.
        """
        if not segments or not self.available:
            return list(segments)
        if per_segment:
            return [self._mark_one(seg, samples) for seg in segments]
        probs = scoring.result() if scoring is not None else self.frame_probs(samples)
        n = min(probs.size, samples.size // _SILERO_FRAME + 1)
        if n == 0:
            return list(segments)
        padded = np.zeros(n * _SILERO_FRAME, dtype=np.float32)
        take = min(samples.size, padded.size)
        padded[:take] = samples[:take]
        energy = np.mean(padded.reshape(n, _SILERO_FRAME) ** 2, axis=1) + 1e-10
        out = []
        for seg in segments:
            a = min(int(seg.start * SAMPLE_RATE) // _SILERO_FRAME, n - 1)
            b = max(a + 1, min(n, -(-int(seg.end * SAMPLE_RATE) // _SILERO_FRAME)))
            w = energy[a:b]
            prob = float(np.sum(probs[a:b] * w) / np.sum(w))
            source: Source = "speech" if prob >= self.threshold else "sound"
            out.append(replace(seg, speech_prob=round(prob, 4), source=source))
        return out

    def _mark_one(self, seg: Segment, samples: np.ndarray) -> Segment:
        a = max(0, int(seg.start * SAMPLE_RATE) // _SILERO_FRAME * _SILERO_FRAME)
        b = min(samples.size, -(-int(seg.end * SAMPLE_RATE) // _SILERO_FRAME) * _SILERO_FRAME)
        n = (b - a) // _SILERO_FRAME
        if n < 1:
            return seg
        warm = min(a, _WARMUP_FRAMES * _SILERO_FRAME) // _SILERO_FRAME  # lets the state settle
        start = a - warm * _SILERO_FRAME
        chunk = np.ascontiguousarray(samples[start : a + n * _SILERO_FRAME], dtype=np.float32)
        probs = self.frame_probs(chunk)[warm : warm + n]
        span = samples[a : a + probs.size * _SILERO_FRAME]
        weights = np.mean(span.reshape(-1, _SILERO_FRAME) ** 2, axis=1) + 1e-10
        prob = float(np.sum(probs * weights) / np.sum(weights))
        source: Source = "speech" if prob >= self.threshold else "sound"
        return replace(seg, speech_prob=round(prob, 4), source=source)


def _onnx_frame_probs(session: Any, samples: np.ndarray) -> np.ndarray:
    """silero's ONNX graph run frame by frame with the state kept here, not in its wrapper.

    Same numbers as the wrapper's ``audio_forward`` (each frame sees the previous 64
    samples, the recurrent state carries over), about 20% faster, and with no shared state
    several threads can score channels at once.
    """
    n = -(-samples.size // _SILERO_FRAME)
    padded = np.zeros(_SILERO_CONTEXT + n * _SILERO_FRAME, dtype=np.float32)
    padded[_SILERO_CONTEXT : _SILERO_CONTEXT + samples.size] = samples
    state = np.zeros((2, 1, 128), dtype=np.float32)
    rate = np.array(SAMPLE_RATE, dtype=np.int64)
    out = np.empty(n, dtype=np.float32)
    run = session.run
    for i in range(n):
        a = i * _SILERO_FRAME
        window = padded[None, a : a + _SILERO_CONTEXT + _SILERO_FRAME]
        prob, state = run(None, {"input": window, "state": state, "sr": rate})
        out[i] = prob[0, 0]
    return out


class FsmnPool:
    """Loaded FSMN-VAD instances, each used by one thread at a time.

    funasr's ``AutoModel`` merges each call's options (a streaming call's cache included)
    into state shared by the instance, so one instance must not run two calls at once. The
    model is about 2 MB, so one instance per core costs nothing and lets channels and calls
    run their VAD side by side.
    """

    def __init__(self, cfg: VadConfig, size: int | None = None) -> None:
        model = cfg.model
        looks_local = model.startswith((".", "/", "~")) or Path(model).expanduser().exists()
        if looks_local:
            path = Path(model).expanduser()
            if not (path / "config.yaml").is_file():
                # funasr takes a missing path for a hub id and retries downloads for ~20 s.
                raise ConfigError(
                    f"{model} is not an FSMN-VAD model directory (no config.yaml); give a "
                    f"directory with config.yaml, model.pt and am.mvn, or the hub id "
                    f"{DEFAULT_FSMN_MODEL!r}",
                    field="vad.model",
                )
            model = str(path.resolve())
        options: dict[str, Any] = {
            "max_single_segment_time": int(cfg.max_single_segment_s * 1000),
            "speech_noise_thres": cfg.fsmn_speech_noise_thres,
        }
        if cfg.fsmn_max_end_silence_s is not None:
            # A fixed end-of-utterance silence. Without it funasr >= 1.4 waits up to 2 s of
            # silence early in a segment, which joins utterances the rules must count apart.
            options["max_end_silence_time"] = int(cfg.fsmn_max_end_silence_s * 1000)
        funasr = import_funasr()
        self._free: queue.SimpleQueue[Any] = queue.SimpleQueue()
        for _ in range(max(1, size or os.cpu_count() or 1)):
            with quiet():
                self._free.put(
                    funasr.AutoModel(
                        model=model,
                        device=cfg.device,
                        disable_update=True,
                        disable_pbar=True,
                        disable_log=True,
                        **options,
                    )
                )

    @contextmanager
    def use(self) -> Iterator[Any]:
        """An instance for this thread alone until the block ends.

        (FSMN's ops are tiny and would run a little faster on one torch thread, but
        ``torch.set_num_threads`` also sets the default every new thread starts from, so a
        recognizer thread starting meanwhile would stay single-threaded: left alone.)
        """
        model = self._free.get()
        try:
            yield model
        finally:
            self._free.put(model)


class FsmnVad(Vad):
    """FunASR FSMN-VAD: speech and other sounds; ``model`` is a hub id or a local directory."""

    capabilities = VadCapabilities(name="fsmn", passes_sounds=True)

    def __init__(self, cfg: VadConfig | None = None) -> None:
        super().__init__(cfg)
        self._models = FsmnPool(self.cfg)
        self.scorer = SpeechScorer(self.cfg.speech_prob_threshold)

    def segments(
        self, samples: np.ndarray, sample_rate: int = SAMPLE_RATE, *, channel: int = 0
    ) -> list[Segment]:
        samples = _at_16k(samples, sample_rate)
        if samples.size < SAMPLE_RATE // 100:  # less than one 10 ms frame
            return []
        per_segment = self.cfg.speech_scoring == "segments"
        scoring = None
        if self.scorer.available and not per_segment:
            # silero over the channel does not need FSMN's segments: score while FSMN runs
            scoring = _scoring_pool().submit(self.scorer.frame_probs, samples)
        with self._models.use() as model, quiet():
            result = model.generate(input=samples, disable_pbar=True)
        spans = result[0]["value"] if result else []
        segs = [
            Segment(channel=channel, start=s / 1000.0, end=e / 1000.0) for s, e in spans if e > s
        ]
        if not segs and scoring is not None:
            scoring.cancel()
        return self.scorer.mark(segs, samples, per_segment=per_segment, scoring=scoring)


class SileroVad(Vad):
    """silero-vad: a speech detector; misses most non-speech sounds (kept as an option)."""

    capabilities = VadCapabilities(name="silero", passes_sounds=False)

    def __init__(self, cfg: VadConfig | None = None) -> None:
        super().__init__(cfg or VadConfig(engine="silero"))
        if not _silero_available():
            raise ImportError(
                "vad.engine 'silero' needs the silero-vad package: pip install 'callsense[silero]'"
            )
        self._model = _silero_model()
        self._lock = threading.Lock()
        self.scorer = SpeechScorer(self.cfg.speech_prob_threshold)

    def segments(
        self, samples: np.ndarray, sample_rate: int = SAMPLE_RATE, *, channel: int = 0
    ) -> list[Segment]:
        import torch
        from silero_vad import get_speech_timestamps

        samples = _at_16k(samples, sample_rate)
        if samples.size < _SILERO_FRAME:
            return []
        with self._lock, torch.inference_mode():
            stamps = get_speech_timestamps(
                torch.from_numpy(np.array(samples, dtype=np.float32)),
                self._model,
                threshold=self.cfg.silero_threshold,
                sampling_rate=SAMPLE_RATE,
                min_speech_duration_ms=int(self.cfg.silero_min_speech_s * 1000),
                min_silence_duration_ms=int(self.cfg.silero_min_silence_s * 1000),
                max_speech_duration_s=self.cfg.max_single_segment_s,
            )
        segs = [
            Segment(channel=channel, start=t["start"] / SAMPLE_RATE, end=t["end"] / SAMPLE_RATE)
            for t in stamps
        ]
        return self.scorer.mark(segs, samples, per_segment=self.cfg.speech_scoring == "segments")


def _at_16k(samples: np.ndarray, sample_rate: int) -> np.ndarray:
    if samples.ndim != 1:
        raise ValueError(f"VAD takes one channel at a time (got shape {samples.shape})")
    # torch.from_numpy inside funasr/silero wants a writable, contiguous float32 array
    return np.require(resample(samples, sample_rate, SAMPLE_RATE), np.float32, ["C", "W"])


VADS: dict[str, type[Vad]] = {"fsmn": FsmnVad, "silero": SileroVad}


def build_vad(cfg: VadConfig) -> Vad:
    """The engine ``cfg.engine`` names; one instance is meant to be shared per process."""
    return VADS[cfg.engine](cfg)
