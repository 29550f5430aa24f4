"""Live streaming benchmark: 1, 4 and 8 concurrent real-time calls over ``WS /v1/stream``.

The real service (``connectors.app.create_app``, uvicorn on 127.0.0.1) runs in this process
with the full-size SenseVoiceSmall (random weights: compute does not depend on their
values; ``bench/_common.py``) and the FSMN-VAD of ../shared/fsmn-vad. Each stream is a
mono 16 kHz PCM16 call of real speech (``speech_clips``: utterances of 3-10 s) with 1.5 s
pauses, sent in 20 ms frames paced at 1x real time; streams start 0-2 s apart.

Latency, per utterance, is measured on the client:

* ``close`` (the headline): from the wall time the client had sent the audio up to the
  stream position where the VAD closed the utterance (``closed_at`` in the message) to the
  arrival of its ``utterance`` message. A decision on that utterance is sent in the same
  turn, right after it, so this is the utterance-end-to-decision time the service adds.
* ``speech_end``: from the wall time the stream passed the utterance's ``end`` (its last
  speech plus padding) to the same message; it adds the VAD's end-of-utterance silence
  (``vad.fsmn_max_end_silence_s``, 0.8 s by default) and the 200 ms VAD step.

The clients run in a second process, as real callers are on other machines: ``cpu`` is the
service process's CPU seconds over wall seconds (2.0 = both cores busy), ``client`` the
client process's (it shares the two cores). RSS: the service process's peak sampled during
each run, and its peak including loading.

``--wall`` adds the supervisor wall: the service runs a policy that escalates whenever the
customer speaks (4 s cooldown, so every stream decides every few seconds), the client
process subscribes to ``WS /v1/wall`` as a page does, and Debian's Chromium shows the wall
page (``#/wall``) throughout. Per decision, side by side:

* ``dec``: from the wall time the client had sent the audio up to where VAD closed the
  deciding utterance to the arrival of the ``decision`` message (the decision latency);
* ``alert``: from that ``decision`` message to the alert's arrival on the wall's WebSocket;
* ``screen``: from that ``decision`` message to the alert on screen (the frame that draws
  it: ``data-shown-at``, which the page stamps with the same clock, the epoch).

The browser shares the two cores with the service (a supervisor's would not).

    python bench/live.py [--streams 1,4,8] [--call-s 60] [--backend onnx] [--quantize int8]
                         [--wall]

The last line reads ``streams=8 p95_ms=<n> rss_mb=<n>`` (close latency, peak RSS while
streaming), with ``decision_p95_ms=<n> screen_p95_ms=<n>`` after it with ``--wall``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import random
import resource
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench._common import SHARED, add_served_model_options, peak_rss_mb, speech_clips  # noqa: E402
from callsense.connectors.outbox_rows import decision_id  # noqa: E402
from callsense.rules.model import Decision  # noqa: E402

FRAME = 320  # 20 ms at 16 kHz
PAUSE_S = 1.5
WALL_POLICY = """\
policy: bench-wall
description: an alert every few seconds of each call, so the bench times many decisions
rules:
  - id: customer-spoke
    when: {speaker: customer}
    cooldown: 4s
    then:
      - escalate: {priority: normal, reason: "bench: the customer spoke"}
"""


@dataclass
class Stream:
    """One client: what it sent when, and what came back."""

    pcm: bytes
    t0: float = 0.0
    latencies_close: list[float] = field(default_factory=list)
    latencies_end: list[float] = field(default_factory=list)
    utterances: int = 0
    errors: int = 0
    ended: bool = False  # the service sent the call's ``end`` (its summary)
    # per decision: its alert id, its message's arrival (epoch ms), its close latency (s)
    decisions: list[tuple[str, float, float]] = field(default_factory=list)

    def wall_at(self, audio_s: float) -> float:
        """When the frame holding audio second ``audio_s`` was sent (1x pacing)."""
        frames = -(-round(audio_s * 16000) // FRAME)
        return self.t0 + frames * FRAME / 16000


def make_call(clips: list[np.ndarray], seconds: float, rng: random.Random) -> bytes:
    """~``seconds`` of call: random clips with pauses, as mono 16 kHz PCM16."""
    parts: list[np.ndarray] = [np.zeros(int(0.5 * 16000), np.float32)]
    total = 0.5
    while total < seconds:
        clip = clips[rng.randrange(len(clips))]
        parts += [clip, np.zeros(int(PAUSE_S * 16000), np.float32)]
        total += clip.size / 16000 + PAUSE_S
    audio = np.concatenate(parts)
    return (np.clip(audio, -1, 1) * 32767).astype("<i2").tobytes()


async def run_stream(url: str, stream: Stream, delay: float, call_id: str) -> None:
    from websockets.asyncio.client import connect

    await asyncio.sleep(delay)
    async with connect(url, max_size=None) as ws:
        start = {"type": "start", "call_id": call_id, "sample_rate": 16000, "channels": 1}
        await ws.send(json.dumps(start))

        closed_at: dict[float, float] = {}  # utterance end -> where VAD closed it

        async def reader() -> None:
            async for raw in ws:
                now = time.monotonic()
                msg = json.loads(raw)
                if msg["type"] == "utterance":
                    stream.utterances += 1
                    stream.latencies_close.append(now - stream.wall_at(msg["closed_at"]))
                    stream.latencies_end.append(now - stream.wall_at(msg["end"]))
                    closed_at[msg["end"]] = msg["closed_at"]
                elif msg["type"] == "decision" and msg["at"] in closed_at:
                    alert = decision_id(Decision.from_dict(msg))
                    close = now - stream.wall_at(closed_at[msg["at"]])
                    stream.decisions.append((alert, time.time() * 1000, close))
                elif msg["type"] == "error":
                    stream.errors += 1
                elif msg["type"] == "end":
                    stream.ended = True

        task = asyncio.create_task(reader())
        stream.t0 = time.monotonic()
        step = FRAME * 2
        for i in range(0, len(stream.pcm), step):
            await ws.send(stream.pcm[i : i + step])
            wait = stream.t0 + (i + step) / 2 / 16000 - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
        await ws.send(json.dumps({"type": "stop"}))
        await asyncio.wait_for(task, 120)


def rss_now_mb() -> float:
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return 0.0


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def watch_wall(url: str, arrived: dict[str, float]) -> None:
    """Subscribe to ``WS /v1/wall`` as a page does; when each new alert arrived (epoch ms)."""
    from websockets.asyncio.client import connect

    async with connect(url, max_size=None) as ws:
        async for raw in ws:
            now = time.time() * 1000
            msg = json.loads(raw)
            for item in msg.get("items", []):
                if item["type"] == "alert":
                    arrived.setdefault(item["alert"]["id"], now)


def run_clients(
    url: str, n: int, calls: list[bytes], seed: int, tag: str, wall_url: str | None = None
) -> tuple[list[Stream], float, dict[str, float]]:
    """The ``n`` clients of one scenario (run in the client process), their CPU seconds, and
    (with ``wall_url``) when each alert reached a wall subscriber."""
    rng = random.Random(seed)
    streams = [Stream(calls[i % len(calls)]) for i in range(n)]
    alerts: dict[str, float] = {}
    cpu0 = sum(resource.getrusage(resource.RUSAGE_SELF)[:2])

    async def all_streams() -> None:
        watcher = asyncio.create_task(watch_wall(wall_url, alerts)) if wall_url else None
        await asyncio.gather(
            *(
                run_stream(url, s, rng.uniform(0, 2.0) if n > 1 else 0.0, f"{tag}-{i}")
                for i, s in enumerate(streams)
            )
        )
        if watcher is not None:
            await asyncio.sleep(1.0)  # the last alerts are on their way
            watcher.cancel()

    asyncio.run(all_streams())
    for s in streams:
        s.pcm = b""  # not sent back
    return streams, sum(resource.getrusage(resource.RUSAGE_SELF)[:2]) - cpu0, alerts


def scenario(
    clients: ProcessPoolExecutor,
    url: str,
    n: int,
    calls: list[bytes],
    seed: int,
    tag: str,
    wall: WallPage | None = None,
) -> dict[str, float]:
    """One scenario: the clients run in their own process (as real callers are elsewhere),
    so the service's CPU and GIL are its own."""
    peak = [rss_now_mb()]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.2):
            peak[0] = max(peak[0], rss_now_mb())

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    cpu0 = sum(resource.getrusage(resource.RUSAGE_SELF)[:2])
    wall0 = time.monotonic()
    wall_url = wall.ws_url if wall is not None else None
    job = clients.submit(run_clients, url, n, calls, seed, tag, wall_url)
    streams, client_cpu, alerts = job.result()
    elapsed = time.monotonic() - wall0
    cpu = sum(resource.getrusage(resource.RUSAGE_SELF)[:2]) - cpu0
    done.set()
    sampler.join()
    close = [x for s in streams for x in s.latencies_close]
    end = [x for s in streams for x in s.latencies_end]
    figures = wall.figures(streams, alerts) if wall is not None else {}
    return {
        **figures,
        "streams": n,
        "utterances": sum(s.utterances for s in streams),
        "errors": sum(s.errors for s in streams),
        "p50_ms": 1000 * pct(close, 0.5),
        "p95_ms": 1000 * pct(close, 0.95),
        "max_ms": 1000 * max(close, default=float("nan")),
        "speech_end_p50_ms": 1000 * pct(end, 0.5),
        "speech_end_p95_ms": 1000 * pct(end, 0.95),
        "cpu": cpu / elapsed,
        "client_cpu": client_cpu / elapsed,
        "rss_mb": peak[0],
        "wall_s": elapsed,
    }


class WallPage:
    """The wall page in Debian's Chromium (Playwright), for the whole run."""

    def __init__(self, base_url: str, key: str) -> None:
        from playwright.sync_api import sync_playwright

        from tests.web.conftest import CHROMIUM_ARGS
        from tools import system_assets

        self.ws_url = base_url.replace("http://", "ws://") + f"/v1/wall?api_key={key}"
        self._pw = sync_playwright().start()
        chromium = system_assets.program("chromium")
        self._browser = self._pw.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        self.page = self._browser.new_page(viewport={"width": 1600, "height": 1000})
        self.page.goto(base_url + "/#/wall")
        self.page.fill("#api-key", key)
        self.page.click("#key-form button[type=submit]")
        self.page.wait_for_selector("#view-wall[data-role=admin]")

    def shown(self, wanted: set[str], timeout_s: float = 5.0) -> dict[str, float]:
        """When each alert reached the screen (epoch ms), waiting a little for the last."""
        script = """() => [...document.querySelectorAll('#wall-alerts li[data-shown-at]')]
            .map((li) => [li.dataset.alertId, Number(li.dataset.shownAt)])"""
        deadline = time.monotonic() + timeout_s
        while True:
            shown = {k: v for k, v in self.page.evaluate(script) if k in wanted}
            if len(shown) == len(wanted) or time.monotonic() > deadline:
                return shown
            time.sleep(0.2)

    def figures(self, streams: list[Stream], alerts: dict[str, float]) -> dict[str, float]:
        """Decision latency beside decision -> alert (WebSocket) and -> screen, in ms."""
        decided = {a: (at, close) for s in streams for a, at, close in s.decisions}
        shown = self.shown(set(decided))
        closes = [c for _, c in decided.values()]
        to_ws = [alerts[a] - t for a, (t, _) in decided.items() if a in alerts]
        to_screen = [shown[a] - t for a, (t, _) in decided.items() if a in shown]
        return {
            "decisions": len(decided),
            "dec_p50_ms": 1000 * pct(closes, 0.5),
            "dec_p95_ms": 1000 * pct(closes, 0.95),
            "alert_p95_ms": pct(to_ws, 0.95),
            "screen_p50_ms": pct(to_screen, 0.5),
            "screen_p95_ms": pct(to_screen, 0.95),
            "not_shown": len(decided) - len(shown),
        }

    def close(self) -> None:
        self._browser.close()
        self._pw.stop()


def bench_model(tmp: Path, backend: str, quantize: str, model_dir: Path | None = None) -> Path:
    """``model_dir``, else the full-size random-weight model built (and exported to ONNX for
    ``backend`` onnx) under ``tmp``, in child processes: their memory is not the service's."""
    if model_dir is not None:
        return model_dir
    print("# building the full-size random-weight model …", flush=True)
    model_dir = tmp / "model"
    build = "import sys; from bench._common import build_model_dir as b; b(sys.argv[1])"
    subprocess.run([sys.executable, "-c", build, str(model_dir)], check=True, cwd=ROOT)
    if backend != "onnx":
        return model_dir
    print("# exporting it to ONNX (about a minute) …", flush=True)
    export = [sys.executable, "-m", "callsense.connectors.cli", "model", "export-onnx"]
    subprocess.run(
        [*export, str(model_dir), str(tmp / "onnx"), "--quantize", quantize], check=True, cwd=ROOT
    )
    return tmp / "onnx"


def bench_config(model_dir: Path, backend: str, quantize: str) -> Any:
    """The service's config (an ``AppConfig``): ``model_dir``, ../shared's FSMN-VAD, no cache."""
    from callsense.connectors.appconfig import AppConfig
    from callsense.pipeline.config import CacheConfig, load_config

    cfg = load_config(
        None, model=str(model_dir), vad_model=str(SHARED / "fsmn-vad"), schema=AppConfig,
        environ={},
    )  # fmt: skip
    recognizer = cfg.recognizer.model_copy(update={"backend": backend, "quantize": quantize})
    return cfg.model_copy(update={"recognizer": recognizer, "cache": CacheConfig(enabled=False)})


def bench_app(tmp: Path, cfg: Any, **settings: Any) -> Any:
    """The real service app (a FastAPI) on a database and data dir under ``tmp``."""
    from callsense.connectors.app import create_app
    from callsense.connectors.service_settings import ServiceSettings

    return create_app(
        cfg,
        db_url=f"sqlite:///{tmp}/bench.db",
        settings=ServiceSettings(data_dir=tmp / "data", scheduler=False, **settings),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--streams", default="1,4,8")
    parser.add_argument("--call-s", type=float, default=60.0, help="audio seconds per stream")
    add_served_model_options(parser)
    parser.add_argument(
        "--wall", action="store_true", help="time decision -> alert on the wall (module doc)"
    )
    args = parser.parse_args()
    counts = [int(x) for x in args.streams.split(",")]

    import logging

    logging.basicConfig(level=logging.WARNING)
    from tests.service.server import running, wait_ready

    with tempfile.TemporaryDirectory(prefix="callsense-bench-live-") as tmp_name:
        tmp = Path(tmp_name)
        model_dir = bench_model(tmp, args.backend, args.quantize, args.model_dir)
        cfg = bench_config(model_dir, args.backend, args.quantize)
        if args.wall:  # every stream decides every few seconds
            policy = tmp / "bench-wall.yaml"
            policy.write_text(WALL_POLICY, encoding="utf-8")
            cfg = cfg.model_copy(update={"policies": [policy]})
        app = bench_app(tmp, cfg)
        key = app.state.runtime.keys.create("bench")
        rng = random.Random(7)
        clips = speech_clips(60.0)
        calls = [make_call(clips, args.call_s, rng) for _ in range(8)]
        print(
            f"# machine: {os.cpu_count()} cpus; model {model_dir} backend={args.backend} "
            f"quantize={args.quantize}; {len(clips)} speech clips",
            flush=True,
        )
        clients = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"))
        with running(app) as base, clients:
            wait_ready(base, timeout=600)
            url = base.replace("http://", "ws://") + f"/v1/stream?api_key={key}"
            wall = WallPage(base, key) if args.wall else None
            # warm-up: loads the live engine (streaming VAD) and the first model calls
            scenario(clients, url, 1, [calls[0][: 16000 * 2 * 12]], 1, "warmup", wall)
            wall_head = (
                f" {'decs':>5} {'dec_p50':>7} {'dec_p95':>7} {'alert_p95':>9} {'screen_p50':>10} "
                f"{'screen_p95':>10}"
            )
            print(
                f"{'streams':>7} {'utts':>5} {'p50_ms':>7} {'p95_ms':>7} {'max_ms':>7} "
                f"{'end_p50':>8} {'end_p95':>8} {'cpu':>5} {'client':>6} {'rss_mb':>7}"
                + (wall_head if wall else ""),
                flush=True,
            )
            last: dict[str, float] = {}
            for n in counts:
                r = scenario(clients, url, n, calls, rng.randrange(1 << 30), f"s{n}", wall)
                row = (
                    f" {r['decisions']:>5} {r['dec_p50_ms']:>7.0f} {r['dec_p95_ms']:>7.0f} "
                    f"{r['alert_p95_ms']:>9.0f} {r['screen_p50_ms']:>10.0f} "
                    f"{r['screen_p95_ms']:>10.0f}"
                    + (f"  not_shown={r['not_shown']}" if r["not_shown"] else "")
                    if wall
                    else ""
                )
                print(
                    f"{n:>7} {r['utterances']:>5} {r['p50_ms']:>7.0f} {r['p95_ms']:>7.0f} "
                    f"{r['max_ms']:>7.0f} {r['speech_end_p50_ms']:>8.0f} "
                    f"{r['speech_end_p95_ms']:>8.0f} {r['cpu']:>5.2f} {r['client_cpu']:>6.2f} "
                    f"{r['rss_mb']:>7.0f}"
                    + row
                    + (f"  errors={r['errors']}" if r["errors"] else ""),
                    flush=True,
                )
                last = r
            if wall is not None:
                wall.close()
            engine = getattr(app.state, "live_engine", None)
            if engine is not None:
                s = engine.worker.stats
                print(
                    f"# recognizer: {s.clips} clips in {s.batches} batches, busy {s.busy_s:.1f} s",
                    flush=True,
                )
        print(f"# peak RSS of the process, model loading included: {peak_rss_mb():.0f} MB")
        tail = (
            f" decision_p95_ms={last.get('dec_p95_ms', 0):.0f} "
            f"screen_p95_ms={last.get('screen_p95_ms', 0):.0f}"
            if args.wall
            else ""
        )
        print(
            f"streams={int(last.get('streams', 0))} p95_ms={last.get('p95_ms', 0):.0f} "
            f"rss_mb={last.get('rss_mb', 0):.0f}" + tail
        )


if __name__ == "__main__":
    main()
