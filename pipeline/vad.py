"""Voice activity: which spans of a channel hold speech or another sound worth recognizing.

The default engine is FunASR's FSMN-VAD, because it lets non-speech sounds through
(laughter, crying, music, a dog bark): SenseVoice can only tag Laughter, Cry or BGM if it is
given those spans. silero-vad is kept as an option; it is a speech detector and drops most
of them (see tests/audio/test_vad_manifest.py for the numbers on ../shared/testdata).

A VAD finds raw spans (``spans``); ``segments`` turns them into the utterances to
recognize (``pipeline.segmentation``) and marks each ``speech`` or ``sound``
(``pipeline.speech_scoring``). ``StreamingVad`` is FSMN-VAD for live calls, one cache per
channel, feeding the same segmenter and scorer.
"""

from __future__ import annotations

import functools
import logging
import os
import queue
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from callsense.core.errors import ConfigError
from callsense.pipeline.audio import SAMPLE_RATE, resample
from callsense.pipeline.model import Segment
from callsense.pipeline.quiet import import_funasr, quiet
from callsense.pipeline.segmentation import ChannelAudio, SegmentationConfig, plan
from callsense.pipeline.speech_scoring import (
    FRAME,
    ChannelScores,
    SpeechScorer,
    silero_available,
    silero_model,
)

__all__ = [
    "DEFAULT_FSMN_MODEL",
    "VADS",
    "FsmnPool",
    "FsmnVad",
    "SileroVad",
    "StreamingVad",
    "Vad",
    "VadCapabilities",
    "VadConfig",
    "build_vad",
]

log = logging.getLogger(__name__)

DEFAULT_FSMN_MODEL = "fsmn-vad"  # funasr's alias of iic/speech_fsmn_vad_zh-cn-16k-common-pytorch


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
        description="silero over the whole channel (best speech/sound marking; a recording "
        "scores it alongside FSMN-VAD, a live call as its audio arrives, about 0.6% of a core "
        "per channel) or over each segment after 0.5 s of context (fewer CPU-seconds on calls "
        "with many pauses; on ../shared/testdata it marks 2 of 45 segments differently, both "
        "close to the threshold). A recording and its live stream mark alike in either mode",
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
    """Finds the spans of one channel; loads its model once and is shared by all calls."""

    capabilities: ClassVar[VadCapabilities]

    def __init__(self, cfg: VadConfig | None = None) -> None:
        self.cfg = cfg or VadConfig()
        self.scorer = SpeechScorer(
            self.cfg.speech_prob_threshold, per_segment=self.cfg.speech_scoring == "segments"
        )

    @abstractmethod
    def spans(self, samples: np.ndarray, *, channel: int = 0) -> list[Segment]:
        """Raw spans of 16 kHz mono ``samples`` in time order (not yet marked)."""

    def segments(
        self,
        samples: np.ndarray,
        sample_rate: int = SAMPLE_RATE,
        *,
        channel: int = 0,
        segmentation: SegmentationConfig | None = None,
    ) -> list[Segment]:
        """Segments of ``samples`` in time order, marked speech or sound; with
        ``segmentation``, the utterances to recognize (``pipeline.segmentation``)."""
        samples = _at_16k(samples, sample_rate)
        scores = None
        if self.scorer.channel_scores() is not None:
            # silero over the channel does not need the VAD's spans: score while it runs
            scores = _scoring_pool().submit(ChannelScores.of, samples)
        found = self.spans(samples, channel=channel)
        if segmentation is not None:
            found = plan(found, samples, segmentation)
        if not found and scores is not None:
            scores.cancel()
        audio = ChannelAudio(samples)
        return self.scorer.mark(found, audio, scores.result() if found and scores else None)


@functools.cache
def _scoring_pool() -> ThreadPoolExecutor:
    """Threads that score channels with silero while FSMN-VAD segments them."""
    return ThreadPoolExecutor(os.cpu_count() or 1, thread_name_prefix="callsense-silero")


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

    def spans(self, samples: np.ndarray, *, channel: int = 0) -> list[Segment]:
        if samples.size < SAMPLE_RATE // 100:  # less than one 10 ms frame
            return []
        with self._models.use() as model, quiet():
            result = model.generate(input=samples, disable_pbar=True)
        found = result[0]["value"] if result else []
        return [Segment(channel, s / 1000.0, e / 1000.0) for s, e in found if e > s]


class SileroVad(Vad):
    """silero-vad: a speech detector; misses most non-speech sounds (kept as an option)."""

    capabilities = VadCapabilities(name="silero", passes_sounds=False)

    def __init__(self, cfg: VadConfig | None = None) -> None:
        super().__init__(cfg or VadConfig(engine="silero"))
        if not silero_available():
            raise ImportError(
                "vad.engine 'silero' needs the silero-vad package: pip install 'callsense[silero]'"
            )
        self._model = silero_model()
        self._lock = threading.Lock()

    def spans(self, samples: np.ndarray, *, channel: int = 0) -> list[Segment]:
        import torch
        from silero_vad import get_speech_timestamps

        if samples.size < FRAME:
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
        return [Segment(channel, t["start"] / SAMPLE_RATE, t["end"] / SAMPLE_RATE) for t in stamps]


class StreamingVad:
    """FSMN-VAD for live calls: one pool of loaded models, one cache per channel.

    ``step`` returns funasr's boundary pairs in ms from the channel's first sample:
    ``(beg, -1)`` speech started, ``(-1, end)`` it ended, ``(beg, end)`` both in this step.
    ``start_lag_s``: FSMN reports a span's start only after enough speech and dates it back
    (its decision window, the look-back, a chunk in flight): no span it reports later starts
    more than this before the heard audio (``lag_s``: the same with a margin).
    ``end_lag_s``: it reports an end only after ``max_end_silence`` of silence, so an open
    span lasts at least until the heard audio less this.
    """

    def __init__(self, cfg: VadConfig, *, chunk_s: float = 0.2) -> None:
        if cfg.engine != "fsmn":
            raise ConfigError(
                f"live streaming needs vad.engine 'fsmn' (got {cfg.engine!r})", field="vad.engine"
            )
        self.cfg = cfg
        self.chunk_ms = round(chunk_s * 1000)
        self._models = FsmnPool(cfg)
        self.scorer = SpeechScorer(
            cfg.speech_prob_threshold, per_segment=cfg.speech_scoring == "segments"
        )
        # a span's start: at most this far behind (ordering channels' utterances by their ends
        # relies on it), and a margin more before a lone short fragment is given up
        self.start_lag_s = _fsmn_start_lag_s(cfg) + chunk_s
        self.lag_s = self.start_lag_s + 0.5
        # funasr's own schedule (None) waits at most 2 s of silence
        silence = cfg.fsmn_max_end_silence_s or 2.0
        self.end_lag_s = silence + chunk_s + 0.2

    def step(
        self, cache: dict[str, Any], samples: np.ndarray, *, final: bool
    ) -> list[tuple[int, int]]:
        x = np.require(samples, np.float32, ["C", "W"])
        with self._models.use() as model:
            out = model.generate(
                input=x, cache=cache, is_final=final, chunk_size=self.chunk_ms, disable_pbar=True
            )
        if not out:
            return []
        return [(int(a), int(b)) for a, b in out[0].get("value", [])]


def _fsmn_start_lag_s(cfg: VadConfig) -> float:
    """How far back FSMN may date a span's start: its decision window, the speech it needs
    to decide and its look-back (from the model's config.yaml; funasr's defaults for a hub
    model not on disk). Measured on ../shared/testdata with 0.2 s chunks: at most 0.63 s
    behind the heard audio, against 0.75 s from this plus the chunk."""
    conf: dict[str, Any] = {}
    path = Path(cfg.model).expanduser() / "config.yaml"
    if path.is_file():
        import yaml

        conf = (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("model_conf", {})
    window = float(conf.get("window_size_ms", 200))
    lookback = float(conf.get("lookback_time_start_point", 200))
    to_speech = float(conf.get("sil_to_speech_time_thres", 150))
    return (window + lookback + to_speech) / 1000.0


def _at_16k(samples: np.ndarray, sample_rate: int) -> np.ndarray:
    if samples.ndim != 1:
        raise ValueError(f"VAD takes one channel at a time (got shape {samples.shape})")
    # torch.from_numpy inside funasr/silero wants a writable, contiguous float32 array
    return np.require(resample(samples, sample_rate, SAMPLE_RATE), np.float32, ["C", "W"])


VADS: dict[str, type[Vad]] = {"fsmn": FsmnVad, "silero": SileroVad}


def build_vad(cfg: VadConfig) -> Vad:
    """The engine ``cfg.engine`` names; one instance is meant to be shared per process."""
    return VADS[cfg.engine](cfg)
