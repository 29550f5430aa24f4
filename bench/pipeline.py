"""Whole-pipeline benchmark: where the time of a 10-minute call goes, per stage and backend.

Builds a stereo telephone call (8 kHz mu-law, customer on channel 0, agent on channel 1)
from real recordings: speech from ../shared/testdata for the customer, Debian's asterisk
prompts for the agent, a stretch of asterisk hold music, silence between turns. The
full-size SenseVoiceSmall with random weights (compute does not depend on weight values)
runs through every stage of ``callsense analyze`` (decode, VAD, segmentation, recognizer,
NLU, rules, dialogue, TTS), once per recognizer backend: torch fp32 (the baseline) and
ONNX Runtime int8 (signed weights) by default, torch dynamic int8 on request
(``--variants torch_fp32,torch_int8,onnx_int8``), interleaved over ``--rounds``. The
result cache is off and so is the TTS cache, so every stage does its full work.

    python bench/pipeline.py [--minutes 10] [--rounds 1] [--workdir DIR]

``--workdir`` keeps the built model, its ONNX export and the call between runs. The last
line reads ``pipeline_rtf=<fastest> baseline_rtf=<torch fp32> variant=<name> minutes=<n>``.
Figures are wall-clock on a shared VM: noisy under load (the load average is printed).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench._common import SHARED, TESTDATA, build_model_dir  # noqa: E402
from callsense.pipeline.stages import CallStage, Stage, Turn  # noqa: E402

# name -> (recognizer backend, quantize, vad.speech_scoring)
VARIANTS = {
    "torch_fp32": ("torch", "none", "channel"),
    "torch_int8": ("torch", "int8", "channel"),
    "onnx_int8": ("onnx", "int8", "channel"),
    # the fast configuration: also score speech/sound only inside VAD segments
    "onnx_int8_fastvad": ("onnx", "int8", "segments"),
}
BASELINE = "torch_fp32"
FRONT = ("decode", "vad", "segmentation", "recognizer")
BACK = ("nlu", "rules", "dialogue", "tts")
# issue 9's "whole batch pipeline": what a decision needs, without the reply stages
DECISION_STAGES = ("decode", "vad", "segmentation", "recognizer", "rules")

CUSTOMER_FILES = (
    "ravdess_03-01-05-01-01-01-01.wav",
    "speechbrain_spk1_snt1.wav",
    "sensevoice-example_en.mp3",
    "firered_BAC009S0764W0121.wav",
    "ravdess_03-01-05-02-01-01-01.wav",
    "speechbrain_spk1_snt3.wav",
    "commonvoice_ja_38833628_16k.wav",
    "ravdess_03-01-01-01-02-01-02.wav",
    "sensevoice-example_zh.mp3",
    "speechbrain_spk1_snt5.wav",
    "ravdess_03-01-05-02-02-01-01.wav",
    "justforlaughs_example_audio.wav",
    "commonvoice_ja_38843402_16k.wav",
    "firered_IT0011W0001.wav",
    "ravdess_03-01-03-01-02-01-02.wav",
)
AGENT_PROMPTS = (
    "agent-loginok",
    "auth-thankyou",
    "call-forwarding",
    "conf-getpin",
    "queue-thankyou",
    "all-circuits-busy-now",
    "cannot-complete-as-dialed",
    "check-number-dial-again",
    "vm-goodbye",
    "conf-hasjoin",
)


def loadavg() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


# --------------------------------------------------------------------------- the call


def build_long_call(out: Path, minutes: float) -> tuple[Path, float]:
    """A stereo call of about ``minutes`` made of real recordings; returns (path, seconds)."""
    from tests.calls import build_call
    from tools.test_clips import MOH_FILES, MOH_PREFIX, PROMPT_PREFIX, ClipRef

    moh = [f"{MOH_PREFIX}{name}" for name in MOH_FILES]
    turns: list[tuple[str, ClipRef]] = []
    total, i = 0.0, 0
    gap, target = 1.2, minutes * 60.0
    durations: dict[str, float] = {}
    while True:
        agent = ClipRef(f"{PROMPT_PREFIX}{AGENT_PROMPTS[i % len(AGENT_PROMPTS)]}.wav")
        customer = ClipRef(CUSTOMER_FILES[i % len(CUSTOMER_FILES)])
        step = [("agent", agent), ("customer", customer)]
        if i % 12 == 6:  # the agent puts the caller on hold now and then
            step.append(("agent", ClipRef(moh[(i // 12) % len(moh)], 5.0, 20.0)))
        for speaker, ref in step:
            seconds = durations.get(ref.file + str(ref.start))
            if seconds is None:
                seconds = _clip_seconds(ref)
                durations[ref.file + str(ref.start)] = seconds
            if total + seconds + gap > target - 1.0:
                path, timeline = build_call(out, tuple(turns), gap=gap, testdata=TESTDATA)
                return path, timeline[-1].end + gap + 0.5
            turns.append((speaker, ref))
            total += seconds + gap
        i += 1


def _clip_seconds(ref: object) -> float:
    from tools.test_clips import load_clip

    return len(load_clip(ref, testdata=TESTDATA)) / 16000.0  # type: ignore[arg-type]


# --------------------------------------------------------------------------- timing


@dataclass
class Times:
    seconds: dict[str, float] = field(default_factory=lambda: defaultdict(float))

    def add(self, stage: str, dt: float) -> None:
        self.seconds[stage] += dt


class _TimedStage(Stage):
    """Wraps a loaded stage so each call's start/process/close is timed under its name."""

    def __init__(self, inner: Stage, times: list[Times]) -> None:
        self.inner = inner
        self.times = times  # the current run's record is times[-1]

    def open(self, call_id: str) -> CallStage:
        return _TimedCall(self.inner.open(call_id), self.times)


class _TimedCall(CallStage):
    def __init__(self, inner: CallStage, times: list[Times]) -> None:
        self.inner = inner
        self.name = inner.name
        self.times = times

    def _timed(self, fn: Callable[[Turn], Turn], turn: Turn) -> Turn:
        t0 = time.perf_counter()
        try:
            return fn(turn)
        finally:
            self.times[-1].add(self.name, time.perf_counter() - t0)

    def start(self, turn: Turn) -> Turn:
        return self._timed(self.inner.start, turn)

    def process(self, turn: Turn) -> Turn:
        return self._timed(self.inner.process, turn)

    def close(self, turn: Turn, call_end: float | None) -> Turn:
        return self._timed(lambda t: self.inner.close(t, call_end), turn)


@dataclass
class Variant:
    name: str
    transcriber: object
    flow: object
    load_s: float
    runs: list[Times] = field(default_factory=list)
    facts: dict[str, object] = field(default_factory=dict)


def run_once(variant: Variant, call: Path) -> Times:
    """The stages of ``Transcriber.transcribe_file`` then the call session, each timed."""
    from callsense.pipeline.audio import decode, speaker_for
    from callsense.pipeline.model import CallTranscript
    from callsense.pipeline.segmentation import plan
    from callsense.pipeline.transcribe import _clip, utterance_from

    tr = variant.transcriber
    cfg = tr.cfg  # type: ignore[attr-defined]
    times = Times()
    variant.runs.append(times)
    t0 = time.perf_counter()
    audio = decode(call, cfg.audio)
    times.add("decode", time.perf_counter() - t0)
    segments = []
    for index, samples in enumerate(audio.channels):
        t0 = time.perf_counter()
        found = tr.vad.segments(samples, audio.sample_rate, channel=index)  # type: ignore[attr-defined]
        times.add("vad", time.perf_counter() - t0)
        t0 = time.perf_counter()
        segments.extend(plan(found, samples, cfg.segmentation))
        times.add("segmentation", time.perf_counter() - t0)
    segments.sort(key=lambda s: (s.start, s.channel))
    t0 = time.perf_counter()
    clips = [_clip(audio.channels[s.channel], s, audio.sample_rate) for s in segments]
    recs = tr.recognizer.recognize(clips, language=cfg.recognizer.language)  # type: ignore[attr-defined]
    n = len(audio.channels)
    utterances = tuple(
        utterance_from(s, r, call_id="bench", speaker=speaker_for(s.channel, n, cfg.audio), cfg=cfg)
        for s, r in zip(segments, recs, strict=True)
    )
    times.add("recognizer", time.perf_counter() - t0)
    transcript = CallTranscript(
        call_id="bench", utterances=utterances, duration=audio.duration, channels=n
    )
    result = variant.flow.run(transcript)  # type: ignore[attr-defined]
    replies = result.replies
    variant.facts = {
        "segments": len(segments),
        "speech_s": round(float(sum(c.size for c in clips)) / 16000.0, 1),
        "tts_engines": sorted({r.engine or "none" for r in replies}),
        "replies": len(replies),
        "decisions": len(result.decisions),
        "errors": len(result.errors),
        "emotions": dict(Counter(u.emotion or "-" for u in utterances).most_common()),
    }
    return times


# --------------------------------------------------------------------------- setup


def prepare_models(workdir: Path, names: list[str]) -> dict[str, Path]:
    model = workdir / "model"
    if not (model / "model.pt").is_file():
        print(f"building the full-size random-weight SenseVoiceSmall in {model} …", flush=True)
        build_model_dir(model)
    dirs = {"torch": model}
    if any(VARIANTS[n][0] == "onnx" for n in names):
        onnx = workdir / "onnx"
        if not (onnx / "model.int8.onnx").is_file():
            from callsense.pipeline.sensevoice_onnx import export_onnx

            print(f"exporting it to ONNX (fp32 + signed int8) in {onnx} …", flush=True)
            export_onnx(model, onnx, quantize="int8")
        dirs["onnx"] = onnx
    return dirs


def load_variant(name: str, dirs: dict[str, Path], workdir: Path) -> Variant:
    import numpy as np

    from callsense.connectors.appconfig import load_app_config
    from callsense.pipeline.analyze import build_flow
    from callsense.pipeline.transcribe import build_transcriber

    backend, quantize, scoring = VARIANTS[name]
    cfg = load_app_config(None, model=str(dirs[backend]), vad_model=str(SHARED / "fsmn-vad"))
    tts = cfg.tts.model_copy(update={"cache": cfg.tts.cache.model_copy(update={"enabled": False})})
    cfg = cfg.model_copy(
        update={
            "recognizer": cfg.recognizer.model_copy(
                update={"backend": backend, "quantize": quantize}
            ),
            "cache": cfg.cache.model_copy(update={"enabled": False}),
            "tts": tts,
            "vad": cfg.vad.model_copy(update={"speech_scoring": scoring}),
        }
    )
    t0 = time.perf_counter()
    transcriber = build_transcriber(cfg)
    load_s = time.perf_counter() - t0
    # first forward passes allocate and pick kernels; not part of a call's cost
    warm = np.sin(np.arange(3 * 16000, dtype=np.float32) * 0.05) * 0.1
    transcriber.recognizer.recognize([warm, warm[:16000]])
    flow = build_flow(cfg)
    variant = Variant(name, transcriber, flow, load_s)
    timed = tuple(_TimedStage(s, variant.runs) for s in flow.stages)
    variant.flow = dataclasses.replace(flow, stages=timed)
    return variant


# --------------------------------------------------------------------------- report


def best_of(variant: Variant) -> Times:
    """The run with the least total time (the VM's fast state)."""
    return min(variant.runs, key=lambda t: sum(t.seconds.values()))


def report(variants: list[Variant], call_s: float) -> tuple[str, float, float]:
    stages = FRONT + BACK
    head = f"{'stage':<14}" + "".join(f"{v.name:>22}" for v in variants)
    print()
    print(f"per-stage seconds (best of {len(variants[0].runs)} round(s)), share of the total")
    print(head)
    print("-" * len(head))
    best = {v.name: best_of(v) for v in variants}
    totals = {v.name: sum(best[v.name].seconds.values()) for v in variants}
    for stage in stages:
        row = f"{stage:<14}"
        for v in variants:
            s = best[v.name].seconds.get(stage, 0.0)
            row += f"{s:>12.2f} s {100 * s / totals[v.name]:>5.1f} %  "
        print(row)
    print("-" * len(head))
    print(f"{'total':<14}" + "".join(f"{totals[v.name]:>12.2f} s {'':>9}" for v in variants))
    print(f"{'pipeline RTF':<14}" + "".join(f"{totals[v.name] / call_s:>22.4f}" for v in variants))
    decision = {
        v.name: sum(best[v.name].seconds.get(s, 0.0) for s in DECISION_STAGES) / call_s
        for v in variants
    }
    print(f"{'decision RTF':<14}" + "".join(f"{decision[v.name]:>22.4f}" for v in variants))
    rec = {v.name: best[v.name].seconds["recognizer"] / call_s for v in variants}
    print(f"{'recognizer RTF':<14}" + "".join(f"{rec[v.name]:>22.4f}" for v in variants))
    print(f"{'model load s':<14}" + "".join(f"{v.load_s:>22.1f}" for v in variants))
    print()
    print("decision RTF = decode + VAD + segmentation + recognizer (fbank included) + rules,")
    print("issue 9's 'whole batch pipeline' (target <= 0.03 with the fast backend).")
    for v in variants:
        rounds = ", ".join(f"{sum(t.seconds.values()) / call_s:.4f}" for t in v.runs)
        print(f"{v.name}: pipeline RTF per round [{rounds}]; {v.facts}")
    fast = min((v for v in variants if v.name != BASELINE), key=lambda v: totals[v.name])
    base = totals[BASELINE] / call_s if BASELINE in totals else float("nan")
    return fast.name, totals[fast.name] / call_s, base


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument(
        "--variants",
        default="torch_fp32,onnx_int8,onnx_int8_fastvad",
        help=f"comma-separated, {BASELINE} required; known: {', '.join(VARIANTS)}",
    )
    args = parser.parse_args(argv)
    names = [n.strip() for n in args.variants.split(",") if n.strip()]
    unknown = [n for n in names if n not in VARIANTS]
    if unknown or BASELINE not in names or len(names) < 2:
        parser.error(f"--variants: {BASELINE} and at least one of {', '.join(VARIANTS)}")
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="callsense-bench-pipeline-"))
    workdir.mkdir(parents=True, exist_ok=True)

    import logging

    logging.disable(logging.WARNING)
    ncpu = os.cpu_count() or 1
    print(
        f"machine: {platform.machine()} {platform.processor() or ''} {ncpu} CPUs, "
        f"Python {platform.python_version()}"
    )
    print(f"load average at start: {loadavg()} (shared VM: figures are noisy under load)")
    dirs = prepare_models(workdir, names)
    call_path = workdir / f"call-{args.minutes:g}min.wav"
    if call_path.is_file():
        from callsense.pipeline.audio import decode

        call_s = decode(call_path).duration
    else:
        print(f"building a {args.minutes:g}-minute stereo call from real recordings …", flush=True)
        call_path, call_s = build_long_call(call_path, args.minutes)
    print(f"call: {call_path} ({call_s:.1f} s, stereo 8 kHz mu-law, customer ch0, agent ch1)")
    variants = []
    for name in names:
        print(f"loading {name} …", flush=True)
        variants.append(load_variant(name, dirs, workdir))
    for r in range(args.rounds):
        for v in variants if r % 2 == 0 else reversed(variants):
            t0 = time.perf_counter()
            run_once(v, call_path)
            took = time.perf_counter() - t0
            print(f"round {r + 1} {v.name}: {took:.1f} s (load avg {loadavg()})", flush=True)
    fast, fast_rtf, base_rtf = report(variants, call_s)
    print(f"load average at end: {loadavg()} (figures are noisy when it exceeds {ncpu})")
    print(
        f"pipeline_rtf={fast_rtf:.4f} baseline_rtf={base_rtf:.4f} variant={fast} "
        f"minutes={call_s / 60:.1f}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
