"""Recognizer benchmark: RTF and peak RSS of SenseVoiceSmall backends on this machine.

Builds the full-size SenseVoiceSmall (config.yaml unchanged: 512 wide, 50 + 20 blocks)
with random weights (compute does not depend on weight values) and the real tokenizer
and CMVN, exports it to ONNX (fp32 and signed int8), and times each variant on ~60 s of
real speech from ../shared/testdata in utterances of 3-10 s, unbatched and in
length-sorted batches. Each variant lives in its own worker process, so its peak RSS
(getrusage of that process, load included) is its own; the variants run interleaved,
several rounds, because this VM alternates between fast and slow states.

    python bench/recognizer.py [--rounds 5] [--write-readme]

The last line reads ``rtf=<best> baseline_rtf=<torch fp32 unbatched> variant=<name> rss_mb=<peak>``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench._common import build_model_dir, peak_rss_mb, speech_clips  # noqa: E402

VARIANTS = ("torch_fp32", "torch_int8", "onnx_fp32", "onnx_int8")
BASELINE = "torch_fp32"
BATCH = 4
DESCRIPTIONS = {
    "torch_fp32": "torch fp32 through funasr `generate` (baseline)",
    "torch_int8": "torch dynamic int8 (`quantize_dynamic` on nn.Linear) through `generate`",
    "onnx_fp32": "ONNX Runtime fp32 (`callsense model export-onnx`)",
    "onnx_int8": "ONNX Runtime int8, signed weights (`--quantize int8`, QInt8)",
}


# --------------------------------------------------------------------------- workers


class _Worker:
    """One loaded variant: times a pass over the clips and reports per-frame top tokens."""

    def __init__(self, variant: str, workdir: Path, threads: int) -> None:
        self.variant = variant
        self.clips = list(np.load(workdir / "clips.npz").values())
        order = sorted(range(len(self.clips)), key=lambda i: self.clips[i].size)
        self.batches = [order[i : i + BATCH] for i in range(0, len(order), BATCH)]
        if variant.startswith("torch"):
            self._load_torch(workdir / "model", threads, int8=variant.endswith("int8"))
        else:
            from callsense.pipeline.sensevoice_onnx import SenseVoiceOnnxRecognizer

            quantize = "int8" if variant.endswith("int8") else "none"
            kw = {"quantize": quantize, "threads": threads, "use_itn": True}
            self.rec = SenseVoiceOnnxRecognizer(workdir / "onnx", **kw)
            self.rec_batched = SenseVoiceOnnxRecognizer(workdir / "onnx", batch_size=BATCH, **kw)

    def _load_torch(self, model_dir: Path, threads: int, *, int8: bool) -> None:
        import logging

        from funasr import AutoModel

        logging.getLogger().setLevel(logging.ERROR)
        self.am = AutoModel(
            model=str(model_dir), disable_update=True, device="cpu", ncpu=threads, disable_pbar=True
        )
        if int8:
            import torch

            self.am.model = torch.ao.quantization.quantize_dynamic(
                self.am.model, {torch.nn.Linear}, dtype=torch.qint8
            )

    def run(self, mode: str) -> float:
        start = time.perf_counter()
        if hasattr(self, "am"):
            if mode == "unbatched":
                for clip in self.clips:
                    self.am.generate(input=clip, language="auto", use_itn=True)
            else:
                for batch in self.batches:
                    self.am.generate(
                        input=[self.clips[i] for i in batch],
                        language="auto",
                        use_itn=True,
                        batch_size=len(batch),
                    )
        else:
            rec = self.rec if mode == "unbatched" else self.rec_batched
            rec.recognize(self.clips)
        return time.perf_counter() - start

    def top_tokens(self) -> list[list[int]]:
        """Per-frame argmax of the CTC logits for each clip (query frames included)."""
        if not hasattr(self, "am"):
            return [
                self.rec.logits([self.rec.features(c)])[0].argmax(-1).tolist() for c in self.clips
            ]
        import torch
        from funasr.utils.load_utils import extract_fbank

        from callsense.pipeline.sensevoice_onnx import TEXTNORM_QUERY, _export_module

        wrapper = _export_module(self.am.model)
        out = []
        with torch.no_grad():
            for clip in self.clips:
                feats, lens = extract_fbank(
                    [torch.as_tensor(clip)], data_type="sound", frontend=self.am.kwargs["frontend"]
                )
                q = torch.tensor([TEXTNORM_QUERY["withitn"]], dtype=torch.int32)
                logits, n = wrapper(feats, lens.reshape(-1), torch.zeros(1, dtype=torch.int32), q)
                out.append(logits[0, : int(n[0])].argmax(-1).tolist())
        return out


def worker_main(variant: str, workdir: Path, threads: int) -> None:
    """Line protocol on stdin/stdout: `run MODE`, `tokens`, `quit`; one JSON line each."""
    real_stdout = sys.stdout
    sys.stdout = sys.stderr  # funasr prints; keep the protocol channel clean
    t0 = time.perf_counter()
    worker = _Worker(variant, workdir, threads)

    def reply(obj: dict[str, Any]) -> None:
        real_stdout.write(json.dumps(obj) + "\n")
        real_stdout.flush()

    reply({"load_s": time.perf_counter() - t0, "rss_mb": peak_rss_mb()})
    for line in sys.stdin:
        cmd, *arg = line.split()
        if cmd == "run":
            reply({"seconds": worker.run(arg[0])})
        elif cmd == "tokens":
            reply({"tokens": worker.top_tokens()})
        elif cmd == "quit":
            reply({"peak_rss_mb": peak_rss_mb()})
            return


def prepare_main(workdir: Path) -> None:
    """Build the full-size random model, export fp32 and int8 ONNX (own process: ~3 GB peak)."""
    from callsense.pipeline.sensevoice_onnx import export_onnx

    t0 = time.perf_counter()
    build_model_dir(workdir / "model", seed=0, dither=0.0)
    t1 = time.perf_counter()
    export_onnx(workdir / "model", workdir / "onnx", quantize="int8")
    t2 = time.perf_counter()
    print(json.dumps({"build_s": t1 - t0, "export_s": t2 - t1, "rss_mb": peak_rss_mb()}))


# --------------------------------------------------------------------------- driver


class _Proc:
    def __init__(self, variant: str, workdir: Path, threads: int) -> None:
        self.variant = variant
        cmd = [sys.executable, __file__, "--worker", variant, "--workdir", str(workdir)]
        cmd += ["--threads", str(threads)]
        self.p = subprocess.Popen(
            cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
        )
        self.hello = self._read()

    def _read(self) -> dict[str, Any]:
        assert self.p.stdout is not None
        line = self.p.stdout.readline()
        if not line:
            raise RuntimeError(f"worker {self.variant} died (exit {self.p.wait()})")
        return json.loads(line)

    def ask(self, command: str) -> dict[str, Any]:
        assert self.p.stdin is not None
        self.p.stdin.write(command + "\n")
        self.p.stdin.flush()
        return self._read()

    def close(self) -> float:
        peak = self.ask("quit")["peak_rss_mb"]
        self.p.wait()
        return float(peak)


def _agreement(ref: list[list[int]], got: list[list[int]]) -> tuple[float, float]:
    frames = same = tags = tags_same = 0
    for a, b in zip(ref, got, strict=True):
        n = min(len(a), len(b))
        frames += max(len(a), len(b))
        same += sum(x == y for x, y in zip(a[:n], b[:n], strict=True))
        tags += 4
        tags_same += sum(x == y for x, y in zip(a[:4], b[:4], strict=True))
    return same / frames, tags_same / tags


def _machine() -> dict[str, str]:
    model = "unknown"
    try:
        for line in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines():
            if line.startswith("Model name:"):
                model = line.split(":", 1)[1].strip()
    except OSError:
        pass
    import onnxruntime
    import torch

    return {
        "cpu": model,
        "cores": str(os.cpu_count()),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "onnxruntime": onnxruntime.__version__,
    }


def _table(results: dict[str, Any], audio_s: float, n_clips: int) -> str:
    base = results[BASELINE]["unbatched"]["best"]
    lines = [
        "| variant | mode | RTF best | RTF median | vs torch fp32 (best) | load s | peak RSS MB |"
        " top-token agree | tag agree |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for v in VARIANTS:
        r = results[v]
        for mode in ("unbatched", f"batch{BATCH}"):
            m = r[mode]
            lines.append(
                f"| {v} | {mode} | {m['best']:.4f} | {m['median']:.4f} | "
                f"{base / m['best']:.2f}x | {r['load_s']:.1f} | {r['peak_rss_mb']:.0f} | "
                f"{r['frame_agree']:.4f} | {r['tag_agree']:.3f} |"
            )
    return "\n".join(lines)


OTHER_SECTIONS = "## `pipeline.py`"


def _readme(table: str, machine: dict[str, str], info: dict[str, Any]) -> str:
    variants = "\n".join(f"- `{k}`: {v}" for k, v in DESCRIPTIONS.items())
    return f"""# Benchmarks

## `recognizer.py` — SenseVoiceSmall backends

`python bench/recognizer.py --write-readme` regenerates this file (about 6-10 minutes).

It builds the **full-size** SenseVoiceSmall (the real `config.yaml`: 512 wide, 50 + 20 blocks)
with **random weights**, the real tokenizer and CMVN, and exports it to ONNX. Compute does not
depend on weight values, so the speed and memory figures hold for the real model; the
agreement figures do not (see below). Audio: {info["audio_s"]:.1f} s of real speech from
`../shared/testdata` in {info["n_clips"]} utterances of 3-10 s. RTF = processing seconds / audio
seconds, fbank included. `batch{BATCH}`: utterances sorted by length, {BATCH} per batch.
Each variant runs in its own worker process (so "peak RSS" is that process's peak, model load
included); the variants run interleaved, {info["rounds"]} rounds after one warm-up, because this
VM alternates between a fast and a slow state: compare variants within one run, not across runs.
Other jobs share the 2 cores while it runs, so the numbers are noisy under load.

{variants}

Machine: {machine["cpu"]}, {machine["cores"]} cores; Python {machine["python"]},
torch {machine["torch"]}, onnxruntime {machine["onnxruntime"]}.

{table}

Building the random model took {info["build_s"]:.0f} s and the ONNX export (fp32 + int8)
{info["export_s"]:.0f} s (peak RSS {info["prepare_rss_mb"]:.0f} MB, a one-time cost).
The torch variants load the fp32 checkpoint through funasr, which is where their load peak
comes from; the ONNX variants load only their `.onnx` file.

**Agreement** is measured against torch fp32 on the same random weights: the share of frames
whose top CTC token is the same, and the share of tag frames (0-3: language, emotion, event,
itn) that agree. Random weights have tiny margins between tokens, so these figures are a
lower bound on what quantization does to a trained model — and not a measure of it: with
the real weights, recheck accuracy on your own labelled calls before switching backends.
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=60.0, help="seconds of speech")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--workdir", type=Path, help="keep the model dirs here (default: temp)")
    ap.add_argument("--write-readme", action="store_true", help="write bench/README.md")
    ap.add_argument("--worker", choices=(*VARIANTS, "prepare"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker == "prepare":
        prepare_main(args.workdir)
        return
    if args.worker:
        worker_main(args.worker, args.workdir, args.threads)
        return

    with tempfile.TemporaryDirectory(prefix="callsense-bench-") as tmp:
        workdir = args.workdir or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        clips = speech_clips(args.seconds)
        np.savez(workdir / "clips.npz", *clips)
        audio_s = sum(c.size for c in clips) / 16000
        print(f"audio: {audio_s:.1f} s in {len(clips)} utterances", flush=True)
        prepared = workdir / "prepare.json"  # a kept --workdir skips the build and export
        if not prepared.is_file():
            prep = subprocess.run(
                [sys.executable, __file__, "--worker", "prepare", "--workdir", str(workdir)],
                check=True,
                capture_output=True,
                text=True,
            )
            prepared.write_text(prep.stdout.strip().splitlines()[-1], encoding="utf-8")
        info = json.loads(prepared.read_text(encoding="utf-8"))
        print(f"prepared: {info}", flush=True)

        procs = {}
        for v in VARIANTS:  # one at a time, so load peaks do not overlap
            procs[v] = _Proc(v, workdir, args.threads)
            print(f"loaded {v}: {procs[v].hello}", flush=True)
        tokens = {v: p.ask("tokens")["tokens"] for v, p in procs.items()}
        times: dict[str, dict[str, list[float]]] = {v: {} for v in VARIANTS}
        for rnd in range(args.rounds + 1):
            for mode in ("unbatched", "batched"):
                order = VARIANTS[rnd % len(VARIANTS) :] + VARIANTS[: rnd % len(VARIANTS)]
                for v in order:
                    seconds = procs[v].ask(f"run {mode}")["seconds"]
                    if rnd:  # round 0 warms up
                        times[v].setdefault(mode, []).append(seconds / audio_s)
            print(
                f"round {rnd}: "
                + ", ".join(f"{v}={times[v]['unbatched'][-1]:.4f}" for v in VARIANTS if times[v]),
                flush=True,
            )
        results: dict[str, Any] = {}
        for v, p in procs.items():
            frame_agree, tag_agree = _agreement(tokens[BASELINE], tokens[v])
            results[v] = {
                "load_s": p.hello["load_s"],
                "peak_rss_mb": p.close(),
                "frame_agree": frame_agree,
                "tag_agree": tag_agree,
            }
            for mode, label in (("unbatched", "unbatched"), ("batched", f"batch{BATCH}")):
                rtf = times[v][mode]
                results[v][label] = {"best": min(rtf), "median": statistics.median(rtf)}

    table = _table(results, audio_s, len(clips))
    print(table)
    if args.write_readme:
        info = {
            **info,
            "prepare_rss_mb": info["rss_mb"],
            "audio_s": audio_s,
            "n_clips": len(clips),
            "rounds": args.rounds,
        }
        readme = _readme(table, _machine(), info)
        path = ROOT / "bench" / "README.md"
        # keep the other benchmarks' sections, which follow this one
        old = path.read_text(encoding="utf-8") if path.is_file() else ""
        rest = old[old.find(OTHER_SECTIONS) :] if OTHER_SECTIONS in old else ""
        path.write_text(readme.rstrip() + "\n\n" + rest if rest else readme, encoding="utf-8")
    best_v, best_mode = min(
        ((v, m) for v in VARIANTS for m in ("unbatched", f"batch{BATCH}")),
        key=lambda vm: results[vm[0]][vm[1]]["best"],
    )
    name = best_v if best_mode == "unbatched" else f"{best_v}+{best_mode}"
    print(
        f"rtf={results[best_v][best_mode]['best']:.4f} "
        f"baseline_rtf={results[BASELINE]['unbatched']['best']:.4f} "
        f"variant={name} rss_mb={results[best_v]['peak_rss_mb']:.0f}"
    )


if __name__ == "__main__":
    main()
