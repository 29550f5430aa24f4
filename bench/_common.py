"""Shared bench helpers: random-weight SenseVoiceSmall model dirs, real speech, peak RSS.

Compute cost does not depend on weight values, so a full-size model with random weights
measures speed and memory honestly; the real tokenizer, CMVN and config keep the
frontend and decoding identical to what users run.
"""

from __future__ import annotations

import argparse
import re
import resource
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from tools import shared_assets

__all__ = [
    "FULL_SIZE",
    "SENSEVOICE_FILES",
    "TESTDATA",
    "build_model_dir",
    "decode_16k",
    "peak_rss_mb",
    "speech_clips",
]

ROOT = Path(__file__).resolve().parents[1]
SHARED = shared_assets.shared_root()
TESTDATA = shared_assets.testdata()
SENSEVOICE_FILES = shared_assets.sensevoice_files()

FULL_SIZE: dict[str, int] = {
    "output_size": 512,
    "attention_heads": 4,
    "linear_units": 2048,
    "num_blocks": 50,
    "tp_blocks": 20,
}

_COPIED = ("am.mvn", "chn_jpn_yue_eng_ko_spectok.bpe.model", "configuration.json")
_SPEECH_FILES = (
    "ravdess_03-01-05-01-01-01-01.wav",
    "speechbrain_spk1_snt1.wav",
    "firered_BAC009S0764W0121.wav",
    "commonvoice_ja_38833628_16k.wav",
    "ravdess_03-01-01-01-02-01-02.wav",
    "speechbrain_spk1_snt3.wav",
    "sensevoice-example_en.mp3",
    "commonvoice_ja_38843402_16k.wav",
    "ravdess_03-01-03-01-02-01-02.wav",
    "speechbrain_spk1_snt5.wav",
    "sensevoice-example_zh.mp3",
    "firered_IT0011W0001.wav",
    "ravdess_03-01-04-02-01-01-02.wav",
    "sensevoice-example_ja.mp3",
    "ravdess_03-01-05-02-02-01-01.wav",
)


def build_model_dir(
    out_dir: Path,
    sizes: dict[str, int] | None = None,
    *,
    seed: int = 0,
    dither: float | None = 0.0,
) -> Path:
    """Write a SenseVoiceSmall dir that funasr's AutoModel loads: real files, random weights.

    ``sizes`` overrides ``encoder_conf`` keys (default: the real full size). ``dither``
    is written under ``frontend_conf`` (None keeps funasr's default of 1.0, which adds
    noise to every fbank and makes outputs non-repeatable).
    """
    import torch

    from callsense.pipeline.quiet import import_funasr

    import_funasr()
    from funasr.models.sense_voice.model import SenseVoiceSmall

    sizes = {**FULL_SIZE, **(sizes or {})}
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for name in _COPIED:
        shutil.copyfile(SENSEVOICE_FILES / name, out_dir / name)
    text = (SENSEVOICE_FILES / "config.yaml").read_text(encoding="utf-8")
    for key, value in sizes.items():
        text, n = re.subn(rf"(\n    {key}: )\d+", rf"\g<1>{value}", text)
        if n != 1:
            raise ValueError(f"config.yaml: encoder_conf.{key}: expected once, found {n}")
    if dither is not None:
        text, n = re.subn(r"(\nfrontend_conf:\n)", rf"\g<1>    dither: {dither}\n", text)
        if n != 1:
            raise ValueError("config.yaml: frontend_conf: not found")
    (out_dir / "config.yaml").write_text(text, encoding="utf-8")

    import yaml

    conf = yaml.safe_load(text)
    torch.manual_seed(seed)
    model = SenseVoiceSmall(
        encoder="SenseVoiceEncoderSmall",
        encoder_conf=conf["encoder_conf"],
        input_size=560,
        vocab_size=25055,
        **conf["model_conf"],
    )
    torch.save(model.state_dict(), out_dir / "model.pt")
    return out_dir


def decode_16k(path: Path) -> np.ndarray:
    """Decode any audio file to 16 kHz mono float32 in [-1, 1] with ffmpeg."""
    cmd = ["ffmpeg", "-nostdin", "-v", "error", "-i", str(path), "-ac", "1", "-ar", "16000"]
    out = subprocess.run(
        [*cmd, "-f", "f32le", "-"],
        check=True,
        capture_output=True,
    ).stdout
    return np.frombuffer(out, dtype=np.float32).copy()


def speech_clips(
    total_s: float = 60.0,
    *,
    min_s: float = 3.0,
    max_s: float = 10.0,
    files: Sequence[str] = _SPEECH_FILES,
) -> list[np.ndarray]:
    """About ``total_s`` seconds of real speech as utterances of ``min_s``..``max_s`` seconds.

    Short clips are concatenated (in order) until they reach ``min_s``; long ones are cut
    at ``max_s``; collection stops once the total reaches ``total_s``.
    """
    clips: list[np.ndarray] = []
    pending: list[np.ndarray] = []
    total = 0.0
    sr = 16000
    for name in files:
        wav = decode_16k(TESTDATA / name)
        while wav.size:
            take = wav[: int(max_s * sr)]
            wav = wav[take.size :]
            pending.append(take)
            joined = np.concatenate(pending)
            if joined.size >= min_s * sr:
                clips.append(joined[: int(max_s * sr)])
                pending = []
                total += clips[-1].size / sr
                if total >= total_s:
                    return clips
    if total < total_s * 0.9:
        raise RuntimeError(f"only {total:.1f} s of speech found in {TESTDATA}")
    return clips


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def add_served_model_options(parser: argparse.ArgumentParser) -> None:
    """``--backend``, ``--quantize`` and ``--model-dir`` of the benches that serve the
    full-size model (live calls, hostile load): the same defaults, so their figures compare."""
    parser.add_argument("--backend", choices=("torch", "onnx"), default="onnx")
    parser.add_argument("--quantize", choices=("none", "int8"), default="int8")
    parser.add_argument(
        "--model-dir",
        type=Path,
        help="an existing full-size model dir (an ONNX export for --backend onnx); default: "
        "build one (and export it) in a temporary directory",
    )
