"""Benchmark the policy engine: durable-rules' raw rate next to callsense's, sessions, memory.

Run: ``python bench/rules.py`` (about a minute). Prints figures side by side; the last line
is ``obs_per_s=<n> durable_rules_events_per_s=<n> live_sessions=<n> rss_growth_pct=<n>``
where obs_per_s is the default backend's rate with 10,000 call sessions live and interleaved,
and rss_growth_pct is resident memory growth between the 10th percent and the end of
200,000 sequential call replays.
"""

from __future__ import annotations

import gc
import json
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import durable_rules_engine as dre  # noqa: E402

from callsense.rules.engine import BACKENDS, DEFAULT_BACKEND, PolicyEngine  # noqa: E402
from callsense.rules.model import Observation  # noqa: E402

DEFAULT = ROOT / "configs" / "policies" / "default.yaml"
SESSIONS = 10_000
ROUNDS = 8
CALLS = 200_000
DURABLE_CALLS = 100_000  # the durable backend is ~3x slower; fewer calls keep the run short
rng = random.Random(7)


def rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def random_obs(call_id: str, seq: int) -> Observation:
    start = seq * 2.0
    return Observation(
        call_id,
        seq,
        start,
        start + 1.8,
        speaker=rng.choice(("customer", "customer", "agent")),
        source="speech",
        lang="en",
        emotion=rng.choice(("ANGRY", "ANGRY", "NEUTRAL", "HAPPY", "EMO_UNKNOWN")),
        event=rng.choice(("Speech", "Speech", "Speech", "Laughter", "BGM")),
        text="",
    )


def durable_raw_rate(n: int = 100_000) -> float:
    """durable-rules alone: one single-event rule, assert + run its action, via its C engine."""
    handle = dre.create_ruleset("bench_raw", json.dumps({"r": {"all": [{"m": {"x": 1}}]}}))
    events = [json.dumps({"sid": "0", "id": i, "x": 1}) for i in range(n)]
    t = time.perf_counter()
    for text in events:
        code, state = dre.assert_event(handle, text)
        if code == 0 and dre.start_action_for_state(handle, state):
            dre.complete_and_start_action(handle, state)
    return n / (time.perf_counter() - t)


def live_rate(backend: str) -> tuple[float, int, int]:
    """Observations/s through the default policy with SESSIONS calls open and interleaved."""
    engine = PolicyEngine.load([DEFAULT], backend=backend)
    sessions = [engine.open(f"call-{i}") for i in range(SESSIONS)]
    batches = [[random_obs(f"call-{i}", r) for i in range(SESSIONS)] for r in range(ROUNDS)]
    decisions = 0
    t = time.perf_counter()
    for batch in batches:
        for session, obs in zip(sessions, batch, strict=True):
            decisions += len(session.observe(obs))
    elapsed = time.perf_counter() - t
    live = len(sessions)
    for session in sessions:
        session.close()
    return SESSIONS * ROUNDS / elapsed, live, decisions


def sequential_memory(backend: str, calls: int) -> tuple[float, int, int]:
    """Replay ``calls`` short calls one after another; RSS growth after the warm-up."""
    engine = PolicyEngine.load([DEFAULT], backend=backend)
    template = [random_obs("x", s) for s in range(6)]
    warm = calls // 10
    rss_warm = 0
    for i in range(calls):
        call_id = f"call-{i}"
        session = engine.open(call_id)
        for obs in template:
            session.observe(obs)
        session.close()
        if i + 1 == warm:
            gc.collect()
            rss_warm = rss_kib()
    gc.collect()
    rss_end = rss_kib()
    return 100.0 * (rss_end - rss_warm) / rss_warm, rss_warm, rss_end


def main() -> None:
    raw = durable_raw_rate()
    print(f"durable-rules raw events/s (C engine, 1 rule):      {raw:>12,.0f}")
    rates = {}
    for backend in BACKENDS:
        rate, live, decisions = live_rate(backend)
        rates[backend] = (rate, live)
        print(
            f"callsense obs/s, backend={backend:<8} {live:,} live sessions: {rate:>12,.0f}"
            f"  ({decisions:,} decisions)"
        )
    memory = {}
    for backend, calls in (("python", CALLS), ("durable", DURABLE_CALLS)):
        t = time.perf_counter()
        growth, warm, end = sequential_memory(backend, calls)
        memory[backend] = growth
        print(
            f"RSS over {calls:,} sequential calls, backend={backend:<8} "
            f"{warm / 1024:.1f} MiB at call {calls // 10:,} -> {end / 1024:.1f} MiB "
            f"({growth:+.2f}%) in {time.perf_counter() - t:.0f} s"
        )
    rate, live = rates[DEFAULT_BACKEND]
    print(f"default backend: {DEFAULT_BACKEND}")
    print(
        f"obs_per_s={rate:.0f} durable_rules_events_per_s={raw:.0f} "
        f"live_sessions={live} rss_growth_pct={memory[DEFAULT_BACKEND]:.2f}"
    )


if __name__ == "__main__":
    main()
