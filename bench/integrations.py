"""callsense inside Pipecat against callsense's own live path, in one run (issue 17).

One real-time mono 16 kHz call (real speech from ``speech_clips``, 1.5 s pauses, 20 ms
frames paced at 1x) goes, one after the other, through:

* ``livecall``: a ``LiveCall`` driven directly (``feed`` per frame, ``events()`` read), as
  the service's WebSocket routes drive it;
* ``pipecat``: a Pipecat pipeline (``PipelineWorker`` + ``WorkerRunner``) of a source that
  plays the call as ``InputAudioRawFrame``s, ``CallsenseProcessor`` and a collecting sink;
* ``passthrough``: the same pipeline without callsense (Pipecat's own cost).

Both callsense paths share one ``LiveEngine`` (the full-size SenseVoiceSmall with random
weights, ``bench/_common.py``: compute does not depend on weight values; the FSMN-VAD of
../shared/fsmn-vad). Per utterance, from the wall time the frame holding the position where
VAD closed it (``close``) or its end (``end``: adds the VAD's end-of-speech silence) was
handed over (``feed`` / pushed by the source) to the arrival of the utterance (the event /
the frame at the sink); ``added`` is pipecat minus livecall, utterance by utterance (the same
audio gives the same utterances). ``frame_ms``: how long each audio frame took from the
source to the sink. ``cpu/s``: process CPU seconds per call second (2 cores: at most 2.0).

    python bench/integrations.py [--call-s 40] [--backend torch|onnx] [--model-dir DIR]

The last line reads ``added_p50_ms=<n> added_p95_ms=<n> pipecat_cpu=<n> livecall_cpu=<n>``.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench._common import SHARED, peak_rss_mb, speech_clips  # noqa: E402
from bench.live import make_call, pct  # noqa: E402

if TYPE_CHECKING:
    from callsense.pipeline.live import LiveEngine

FRAME_S = 0.02
FRAME = 640  # bytes: 20 ms of 16 kHz PCM16


@dataclass
class Run:
    """One path's figures: per-utterance latencies (s), frame transit (s), CPU."""

    name: str
    close: list[float] = field(default_factory=list)
    end: list[float] = field(default_factory=list)
    transit: list[float] = field(default_factory=list)
    cpu_s: float = 0.0
    call_s: float = 0.0

    def row(self) -> str:
        ms = [1000 * pct(v, q) for v in (self.close, self.end) for q in (0.5, 0.95)]
        frames = [1000 * pct(self.transit, q) for q in (0.5, 0.95)] if self.transit else []
        cols = " ".join(f"{x:>9.0f}" for x in ms)
        fcol = " ".join(f"{x:>9.2f}" for x in frames) if frames else f"{'-':>9} {'-':>9}"
        return (
            f"{self.name:<12} {len(self.close):>5} {cols} {fcol} {self.cpu_s / self.call_s:>7.3f}"
        )


def cpu_now() -> float:
    return sum(resource.getrusage(resource.RUSAGE_SELF)[:2])


async def livecall(engine: LiveEngine, pcm: bytes) -> Run:
    from callsense.pipeline.events import UtteranceEvent
    from callsense.pipeline.live import StreamFormat

    run = Run("livecall", call_s=len(pcm) / 32000)
    call = engine.open("bench-livecall", StreamFormat(roles={0: "customer"}), speak=False)
    await call.start()
    fed: list[float] = []

    async def read() -> None:
        async for event in call.events():
            if isinstance(event, UtteranceEvent):
                now = time.monotonic()
                run.close.append(now - fed[min(int(event.closed_at / FRAME_S), len(fed) - 1)])
                run.end.append(now - fed[min(int(event.utterance.end / FRAME_S), len(fed) - 1)])

    reader = asyncio.create_task(read())
    cpu0, t0 = cpu_now(), time.monotonic()
    for i, at in enumerate(range(0, len(pcm), FRAME)):
        fed.append(time.monotonic())
        await call.feed(pcm[at : at + FRAME])
        await asyncio.sleep(max(0.0, t0 + (i + 1) * FRAME_S - time.monotonic()))
    await call.close()
    await reader
    run.cpu_s = cpu_now() - cpu0
    return run


async def pipecat(engine: LiveEngine, pcm: bytes, *, with_callsense: bool) -> Run:
    from pipecat.frames.frames import InputAudioRawFrame

    from callsense.connectors.integrations.pipecat import (
        CallsenseProcessor,
        CallsenseUtteranceFrame,
    )
    from tests.integrations.pipecat_harness import Collector, RecordingSource, run_pipeline

    run = Run("pipecat" if with_callsense else "passthrough", call_s=len(pcm) / 32000)
    source, sink = RecordingSource(pcm, 16000), Collector()
    middle = [CallsenseProcessor(engine, call_id="bench-pipecat")] if with_callsense else []
    cpu0 = cpu_now()
    await run_pipeline([source, *middle, sink])
    run.cpu_s = cpu_now() - cpu0
    pushed = [t for t, _ in source.sent]
    arrived = {id(f): t for t, f in sink.frames if isinstance(f, InputAudioRawFrame)}
    run.transit = [arrived[id(f)] - t for t, f in source.sent if id(f) in arrived]
    for t, frame in sink.frames:
        if isinstance(frame, CallsenseUtteranceFrame):
            run.close.append(t - pushed[min(int(frame.closed_at / FRAME_S), len(pushed) - 1)])
            run.end.append(t - pushed[min(int(frame.end / FRAME_S), len(pushed) - 1)])
    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--call-s", type=float, default=40.0, help="audio seconds of the call")
    parser.add_argument("--backend", choices=("torch", "onnx"), default="torch")
    parser.add_argument("--quantize", choices=("none", "int8"), default="int8")
    parser.add_argument("--model-dir", type=Path, help="an existing model dir (default: build)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    from loguru import logger

    logger.remove()  # Pipecat's per-frame debug logging is not what is measured
    from callsense.pipeline.config import load_config
    from callsense.pipeline.live import LiveEngine

    with tempfile.TemporaryDirectory(prefix="callsense-bench-integrations-") as tmp_name:
        tmp, model_dir = Path(tmp_name), args.model_dir
        if model_dir is None:
            print("# building the full-size random-weight model …", flush=True)
            model_dir = tmp / "model"
            build = "import sys; from bench._common import build_model_dir as b; b(sys.argv[1])"
            subprocess.run([sys.executable, "-c", build, str(model_dir)], check=True, cwd=ROOT)
            if args.backend == "onnx":
                print("# exporting it to ONNX (about a minute) …", flush=True)
                export = [sys.executable, "-m", "callsense.connectors.cli", "model", "export-onnx"]
                subprocess.run([*export, str(model_dir), str(tmp / "onnx"), "--quantize",
                                args.quantize], check=True, cwd=ROOT)  # fmt: skip
                model_dir = tmp / "onnx"
        cfg = load_config(
            None, model=str(model_dir), vad_model=str(SHARED / "fsmn-vad"), environ={}
        )
        recognizer = cfg.recognizer.model_copy(
            update={"backend": args.backend, "quantize": args.quantize}
        )
        cfg = cfg.model_copy(update={"recognizer": recognizer})
        engine = LiveEngine.from_config(cfg)
        clips = speech_clips(60.0)
        pcm = make_call(clips, args.call_s, random.Random(17))
        print(f"# machine: {os.cpu_count()} cpus, load {os.getloadavg()[0]:.2f}; model "
              f"{model_dir.name} backend={args.backend}; call {len(pcm) / 32000:.1f} s at 1x",
              flush=True)  # fmt: skip
        try:
            asyncio.run(livecall(engine, pcm[: 32000 * 8]))  # warm-up: VAD, first model calls
            runs = [
                asyncio.run(livecall(engine, pcm)),
                asyncio.run(pipecat(engine, pcm, with_callsense=True)),
                asyncio.run(pipecat(engine, pcm, with_callsense=False)),
            ]
        finally:
            engine.close()
    print(f"{'path':<12} {'utts':>5} {'close_p50':>9} {'close_p95':>9} {'end_p50':>9} "
          f"{'end_p95':>9} {'frame_p50':>9} {'frame_p95':>9} {'cpu/s':>7}")  # fmt: skip
    for run in runs:
        print(run.row())
    direct, inside = runs[0], runs[1]
    added = [b - a for a, b in zip(direct.close, inside.close, strict=False)]
    if len(direct.close) != len(inside.close):
        print(f"# utterances differ: livecall {len(direct.close)}, pipecat {len(inside.close)}")
    p50, p95 = 1000 * pct(added, 0.5), 1000 * pct(added, 0.95)
    print(f"# added by the processor per utterance: p50 {p50:+.1f} ms, p95 {p95:+.1f} ms; "
          f"CPU per call second {inside.cpu_s / inside.call_s:.3f} vs "
          f"{direct.cpu_s / direct.call_s:.3f} (passthrough pipeline alone "
          f"{runs[2].cpu_s / runs[2].call_s:.3f}); load {os.getloadavg()[0]:.2f}")  # fmt: skip
    print(f"# peak RSS: {peak_rss_mb():.0f} MB")
    print(f"added_p50_ms={p50:.1f} added_p95_ms={p95:.1f} "
          f"pipecat_cpu={inside.cpu_s / inside.call_s:.3f} "
          f"livecall_cpu={direct.cpu_s / direct.call_s:.3f}")  # fmt: skip


if __name__ == "__main__":
    main()
