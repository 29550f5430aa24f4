"""Scale-out benchmark: the Ray model tier beside ``engine: local``, in one run.

Simulated live calls (asyncio tasks, as a gateway runs them) each close an utterance of
real speech every ``--period`` seconds; an utterance's decision latency runs from its end
(submission) to the policy decision computed on its recognition. Two recognizers:

* ``full``: the full-size SenseVoiceSmall with random weights (bench/_common.py), where
  it fits on this machine (8 calls);
* ``replay``: sleeps the full model's latency as calibrated here (CPU-seconds per second
  of audio, on one core, for the batch's longest clip) and costs no CPU: a model tier
  sized to the load, so what is measured is the gateway, the handles, Serve's batching
  and queueing. It runs 8/16/32 calls on both engines and 1,000 calls on Ray.
* ``null``: answers at once (32 calls on each engine), so its latency is only what the
  path to the model adds: the event loop, the handle call, Serve's routing and batching.

The model is the int8 ONNX export by default (``--backend onnx``, what the README
recommends for CPUs; exported into ``MODEL_DIR/onnx`` on first use), or torch fp32.

``local`` is one process: a shared recognizer behind a micro-batching thread. ``ray`` is a
gateway process calling a Ray Serve deployment through ``DeploymentHandle`` (no HTTP
proxy), ``@serve.batch`` across calls. Replica scaling is the full model's throughput with
2 replicas over twice that with 1 (one CPU each).

    python bench/scale_out.py [--window 12] [--model-dir DIR]

The last line reads ``calls=32 p95_ms=<n> cores_per_1000_calls=<n> replica_scaling=<ratio>``
(ray engine, replay recognizer; cores = gateway + model + Serve per 1000 concurrent calls).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import queue
import statistics
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
# Ray reads this at import: bind to 127.0.0.1 only. Workers import bench.* via PYTHONPATH.
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ["PYTHONPATH"] = os.pathsep.join(
    p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p
)

from bench._common import build_model_dir, speech_clips  # noqa: E402
from callsense.pipeline.config import CallsenseConfig  # noqa: E402
from callsense.pipeline.model import Segment, TagConfidence  # noqa: E402
from callsense.pipeline.policy_stage import CallPolicy  # noqa: E402
from callsense.pipeline.recognizer import Recognition, Recognizer, RecognizerCapabilities  # noqa: E402
from callsense.pipeline.sensevoice import RecognizerConfig  # noqa: E402
from callsense.pipeline.transcribe import utterance_from  # noqa: E402
from callsense.rules.engine import PolicyEngine  # noqa: E402

REPLAY_ENV = "CALLSENSE_BENCH_REPLAY_S_PER_AUDIO_S"
SR = 16000


class ReplayRecognizer(Recognizer):
    """The full model's calibrated latency without its CPU: a tier sized to the load."""

    def __init__(
        self, config: RecognizerConfig | None = None, *, s_per_audio_s: float | None = None
    ) -> None:
        self.capabilities = RecognizerCapabilities(name="replay", batching=True)
        if s_per_audio_s is None:
            s_per_audio_s = float(os.environ.get(REPLAY_ENV, "0.15"))
        self.s_per_audio_s = s_per_audio_s

    def recognize(
        self, clips: Sequence[np.ndarray], *, language: str | None = "auto"
    ) -> list[Recognition]:
        longest = max((c.size for c in clips), default=0) / SR
        time.sleep(self.s_per_audio_s * longest)
        return [_replay_result(c) for c in clips]


def _replay_result(clip: np.ndarray) -> Recognition:
    emotion = "ANGRY" if clip.size % 3 else "NEUTRAL"
    return Recognition(
        raw=f"<|en|><|{emotion}|><|Speech|><|withitn|>Yes.",
        confidence=TagConfidence(0.99, 0.9, 0.98),
    )


def replay_factory(config: RecognizerConfig) -> ReplayRecognizer:
    return ReplayRecognizer(config)


def null_factory(config: RecognizerConfig) -> ReplayRecognizer:
    """Answers at once: isolates the cost of the path to the model tier."""
    return ReplayRecognizer(config, s_per_audio_s=0.0)


# ------------------------------------------------------------------ the simulated calls

Recognize = Callable[[np.ndarray, str], Awaitable[Recognition]]


@dataclass(slots=True)
class Level:
    engine: str
    model: str
    calls: int
    latencies_ms: list[float]
    audio_s: float
    wall_s: float
    gateway_cpu_s: float
    model_cpu_s: float

    @property
    def p50(self) -> float:
        return statistics.median(self.latencies_ms) if self.latencies_ms else float("nan")

    @property
    def p95(self) -> float:
        lat = sorted(self.latencies_ms)
        return lat[min(len(lat) - 1, int(0.95 * len(lat)))] if lat else float("nan")

    @property
    def gateway_ms_per_utt(self) -> float:
        return 1000 * self.gateway_cpu_s / max(1, len(self.latencies_ms))

    @property
    def gateway_per_call_s(self) -> float:
        """Gateway CPU-seconds per call-second."""
        return self.gateway_cpu_s / (self.calls * self.wall_s)

    @property
    def model_per_audio_s(self) -> float:
        """Model-tier CPU-seconds per utterance-second (second of recognized audio)."""
        return self.model_cpu_s / self.audio_s if self.audio_s else float("nan")


async def simulate(
    calls: int,
    window_s: float,
    period_s: float,
    clips: list[np.ndarray],
    recognize: Recognize,
    engine: PolicyEngine,
) -> tuple[list[float], float]:
    """Each call closes an utterance every ``period_s`` (staggered); returns latencies, audio."""
    cfg = CallsenseConfig()
    latencies: list[float] = []
    audio = 0.0
    rng = np.random.default_rng(calls)
    start = time.perf_counter()

    async def one_call(n: int, offset: float) -> None:
        nonlocal audio
        policy = CallPolicy(engine.open(f"call-{n}"))
        k = 0
        while True:
            due = start + offset + k * period_s
            if due - start > window_s:
                return
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
            clip = clips[(n * 7 + k) % len(clips)]
            t0 = time.perf_counter()
            rec = await recognize(clip, f"call-{n}:{k}")
            seg = Segment(0, k * period_s, k * period_s + clip.size / SR)
            utt = utterance_from(seg, rec, call_id=f"call-{n}", speaker="customer", cfg=cfg)
            policy.feed(utt)
            latencies.append((time.perf_counter() - t0) * 1000)
            audio += clip.size / SR
            k += 1

    offsets = rng.uniform(0, period_s, size=calls)
    await asyncio.gather(*(one_call(n, float(o)) for n, o in enumerate(offsets)))
    return latencies, audio


class LocalBatcher:
    """``engine: local``: one shared recognizer, utterances of all calls micro-batched."""

    def __init__(self, recognizer: Recognizer, max_batch: int = 8, wait_s: float = 0.01):
        self.recognizer = recognizer
        self.max_batch = max_batch
        self.wait_s = wait_s
        self.cpu_s = 0.0
        self._q: queue.Queue = queue.Queue()
        self._thread = threading.Thread(target=self._work, daemon=True)
        self._thread.start()

    async def recognize(self, clip: np.ndarray, _uid: str) -> Recognition:
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        self._q.put((clip, fut, loop))
        return await fut

    def _work(self) -> None:
        while True:
            items = [self._q.get()]
            if items[0] is None:
                return
            deadline = time.monotonic() + self.wait_s
            while len(items) < self.max_batch:
                try:
                    item = self._q.get(timeout=max(0.0, deadline - time.monotonic()))
                except queue.Empty:
                    break
                if item is None:
                    self._q.put(None)
                    break
                items.append(item)
            # process CPU over the call: torch computes on its own thread pool, which
            # thread_time would miss; the event loop's share meanwhile is small
            c0 = time.process_time()
            recs = self.recognizer.recognize([c for c, _, _ in items], language="en")
            self.cpu_s += time.process_time() - c0
            for (_, fut, loop), rec in zip(items, recs, strict=True):
                loop.call_soon_threadsafe(fut.set_result, rec)

    def close(self) -> None:
        self._q.put(None)
        self._thread.join()


def _proc_cpu_s(match: str) -> float:
    """CPU seconds of every process whose command line contains ``match`` (Ray replicas)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
            if match.encode() not in cmd:
                continue
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / tick
    return total


def run_level(
    engine_name: str,
    model: str,
    calls: int,
    args: argparse.Namespace,
    clips: list[np.ndarray],
    recognize: Recognize,
    policies: PolicyEngine,
    model_cpu: Callable[[], float],
    period: float | None = None,
) -> Level:
    m0, c0, t0 = model_cpu(), time.process_time(), time.perf_counter()
    period = period or args.period
    lat, audio = asyncio.run(simulate(calls, args.window, period, clips, recognize, policies))
    wall = time.perf_counter() - t0
    proc = time.process_time() - c0
    model_s = model_cpu() - m0
    gateway = proc - model_s if engine_name == "local" else proc  # local: model is in-process
    level = Level(engine_name, model, calls, lat, audio, wall, gateway, model_s)
    print(
        f"  {engine_name:5} {model:6} calls={calls:5d} utts={len(lat):5d} "
        f"p50={level.p50:7.1f} ms p95={level.p95:7.1f} ms "
        f"gateway={level.gateway_ms_per_utt:.2f} cpu-ms/utt "
        f"model={level.model_per_audio_s:.3f} cpu-s/utt-s",
        flush=True,
    )
    return level


def throughput(remote: object, clips: list[np.ndarray], n: int) -> float:
    """Utterance-seconds recognized per wall second with ``n`` utterances in flight."""
    batch = [clips[i % len(clips)] for i in range(n)]
    remote.recognize(batch[:2], language="en")  # type: ignore[attr-defined]  # warm
    t0 = time.perf_counter()
    remote.recognize(batch, language="en")  # type: ignore[attr-defined]
    return sum(c.size for c in batch) / SR / (time.perf_counter() - t0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--window", type=float, default=10.0, help="seconds per level")
    parser.add_argument("--period", type=float, default=4.0, help="s between a call's utts")
    parser.add_argument("--model-dir", type=Path, default=Path("/tmp/callsense-bench-fullsize"))
    parser.add_argument(
        "--backend",
        choices=("onnx", "torch"),
        default="onnx",
        help="the model tier's backend: onnx = the signed-int8 export (what the README "
        "recommends), exported into MODEL_DIR/onnx on first use; torch = fp32 through funasr",
    )
    parser.add_argument("--many", type=int, default=1000, help="replayed calls on Ray")
    parser.add_argument(
        "--many-period",
        type=float,
        default=100.0,
        help="s between a call's utterances in the --many run (what 2 busy cores sustain)",
    )
    args = parser.parse_args()
    t_start = time.perf_counter()

    if not (args.model_dir / "model.pt").exists():
        print(f"building the full-size random-weight model in {args.model_dir} …", flush=True)
        build_model_dir(args.model_dir)
    clips = speech_clips(40.0, min_s=1.5, max_s=3.0)
    policies = PolicyEngine.load([ROOT / "configs" / "policies" / "default.yaml"])

    # calibration: the full model's CPU-seconds per second of audio on one core
    from callsense.pipeline.recognizer import build_recognizer

    full_cfg = RecognizerConfig(model=str(args.model_dir), ncpu=1)
    if args.backend == "onnx":
        onnx_dir = args.model_dir / "onnx"
        if not (onnx_dir / "model.int8.onnx").exists():
            from callsense.pipeline.sensevoice_onnx import export_onnx

            print(f"exporting the int8 ONNX model to {onnx_dir} …", flush=True)
            export_onnx(args.model_dir, onnx_dir, quantize="int8")
        full_cfg = RecognizerConfig(model=str(onnx_dir), ncpu=1, backend="onnx", quantize="int8")
    full = build_recognizer(full_cfg)
    full.recognize(clips[:1], language="en")
    c0 = time.process_time()
    for clip in clips[:8]:
        full.recognize([clip], language="en")
    per_audio = (time.process_time() - c0) / (sum(c.size for c in clips[:8]) / SR)
    os.environ[REPLAY_ENV] = f"{per_audio:.4f}"
    print(
        f"full-size model ({args.backend}): {per_audio:.3f} cpu-s per audio-s on one core",
        flush=True,
    )

    levels: list[Level] = []
    print("engine: local", flush=True)
    import torch

    torch.set_num_threads(2)  # local analyze/serve uses every core
    local_full = build_recognizer(full_cfg.model_copy(update={"ncpu": os.cpu_count() or 1}))
    batcher = LocalBatcher(local_full)
    levels.append(run_level("local", "full", 8, args, clips, batcher.recognize, policies,
                            lambda: batcher.cpu_s))  # fmt: skip
    batcher.close()
    replay = LocalBatcher(ReplayRecognizer())
    for calls in (8, 16, 32):
        levels.append(run_level("local", "replay", calls, args, clips, replay.recognize,
                                policies, lambda: replay.cpu_s))  # fmt: skip
    replay.close()
    null = LocalBatcher(ReplayRecognizer(s_per_audio_s=0.0))
    levels.append(run_level("local", "null", 32, args, clips, null.recognize, policies,
                            lambda: null.cpu_s))  # fmt: skip
    null.close()

    print("engine: ray", flush=True)
    import ray
    from ray import serve

    from callsense.pipeline.distributed.config import RayConfig
    from callsense.pipeline.distributed.serve_recognizer import RemoteRecognizer, build_app

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             _node_ip_address="127.0.0.1")  # fmt: skip
    serve.start(proxy_location="Disabled")
    try:
        replay_cfg = RayConfig(
            app_name="replay",
            recognizer_factory="bench.scale_out:replay_factory",
            num_replicas=4,
            ray_actor_options={"num_cpus": 0.1},
            max_ongoing_requests=256,
            batch={"max_batch_size": 64, "batch_wait_timeout_s": 0.01},
            handle_timeout_s=30,
        )
        handle = serve.run(build_app(replay_cfg, full_cfg), name="replay", route_prefix=None)
        remote = RemoteRecognizer(handle, timeout_s=30)

        async def via_handle(clip: np.ndarray, uid: str) -> Recognition:
            return await remote.recognize_async(clip, utterance_id=uid, language="en")

        def replicas(app: str) -> Callable[[], float]:
            return lambda: _proc_cpu_s(f"ServeReplica:{app}")

        for calls in (8, 16, 32):
            levels.append(run_level("ray", "replay", calls, args, clips, via_handle, policies,
                                    replicas("replay")))  # fmt: skip
        many = run_level("ray", "replay", args.many, args, clips, via_handle, policies,
                         replicas("replay"), period=args.many_period)  # fmt: skip
        levels.append(many)
        serve.delete("replay")

        # a model that answers at once: what the gateway, the handle and Serve add
        null_cfg = replay_cfg.model_copy(
            update={"app_name": "null", "recognizer_factory": "bench.scale_out:null_factory"}
        )
        handle = serve.run(build_app(null_cfg, full_cfg), name="null", route_prefix=None)
        remote = RemoteRecognizer(handle, timeout_s=30)
        levels.append(run_level("ray", "null", 32, args, clips, via_handle, policies,
                                replicas("null")))  # fmt: skip
        serve.delete("null")

        full_ray = RayConfig(app_name="full", num_replicas=1, handle_timeout_s=120,
                             ray_actor_options={"num_cpus": 1})  # fmt: skip
        handle = serve.run(build_app(full_ray, full_cfg), name="full", route_prefix=None)
        remote = RemoteRecognizer(handle, timeout_s=120)
        one = throughput(remote, clips, 8)
        two_cfg = full_ray.model_copy(update={"num_replicas": 2})
        handle = serve.run(build_app(two_cfg, full_cfg), name="full", route_prefix=None)
        remote = RemoteRecognizer(handle, timeout_s=120)
        two = throughput(remote, clips, 16)
        scaling = two / (2 * one)
        print(f"  replicas 1 -> 2: {one:.1f} -> {two:.1f} utt-s/s, efficiency {scaling:.2f}")
        levels.append(run_level("ray", "full", 8, args, clips, via_handle, policies,
                                replicas("full")))  # fmt: skip
    finally:
        serve.shutdown()
        ray.shutdown()

    mean_clip_s = float(np.mean([c.size for c in clips])) / SR
    _report(levels, per_audio, mean_clip_s, scaling, args, time.perf_counter() - t_start)


def _report(
    levels: list[Level],
    per_audio: float,
    mean_clip_s: float,
    scaling: float,
    args: argparse.Namespace,
    took: float,
) -> None:
    print()
    print("| engine | model | calls | utterances | p50 ms | p95 ms | gateway cpu-ms/utt | "
          "gateway cpu-ms/call-s | model tier cpu-s/utt-s |")  # fmt: skip
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for lv in levels:
        print(f"| {lv.engine} | {lv.model} | {lv.calls} | {len(lv.latencies_ms)} | "
              f"{lv.p50:.0f} | {lv.p95:.0f} | {lv.gateway_ms_per_utt:.2f} | "
              f"{1000 * lv.gateway_per_call_s:.2f} | {lv.model_per_audio_s:.3f} |")  # fmt: skip
    many = next(lv for lv in levels if lv.engine == "ray" and lv.calls == args.many)
    # per-utterance costs from the many-call run, at the standard load of --period
    utt_rate = 1.0 / args.period  # utterances per call-second
    speech = mean_clip_s * utt_rate  # utterance-seconds per call-second
    n_many = max(1, len(many.latencies_ms))
    gateway = many.gateway_cpu_s / n_many * utt_rate
    serve_overhead = many.model_cpu_s / n_many * utt_rate  # replay replicas: Serve's own CPU
    cores = 1000 * (gateway + serve_overhead + per_audio * speech)
    at32 = next(lv for lv in levels if lv.engine == "ray" and lv.model == "replay"
                and lv.calls == 32)  # fmt: skip
    print(
        f"\nper 1000 calls ({speech:.2f} utterance-s per call-s): gateway "
        f"{1000 * gateway:.2f} + Serve {1000 * serve_overhead:.2f} + model "
        f"{1000 * per_audio * speech:.2f} cores; bench took {took:.0f} s"
    )
    for lv in levels:
        if lv.model == "null":
            print(f"path to the model ({lv.engine}, {lv.calls} calls, model answers at once): "
                  f"p50 {lv.p50:.1f} ms, p95 {lv.p95:.1f} ms")  # fmt: skip
    print(
        f"calls=32 p95_ms={at32.p95:.0f} cores_per_1000_calls={cores:.1f} "
        f"replica_scaling={scaling:.2f}"
    )


if __name__ == "__main__":
    main()
