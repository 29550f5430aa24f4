"""Audio an attacker uploads, shared by the hostile-input tests and ``bench/hostile.py``."""

from __future__ import annotations

import struct
import subprocess
from pathlib import Path


def silent_wav(channels: int, frames: int, rate: int = 16000) -> bytes:
    """A PCM16 WAV of silence, written by hand: the wave module refuses 99 channels."""
    data = bytes(2 * channels * frames)
    fmt = struct.pack("<HHIIHH", 1, channels, rate, 2 * rate * channels, 2 * channels, 16)
    return (
        b"RIFF" + struct.pack("<I", 36 + len(data)) + b"WAVE"
        + b"fmt " + struct.pack("<I", len(fmt)) + fmt
        + b"data" + struct.pack("<I", len(data)) + data
    )  # fmt: skip


def surround_silence_flac(path: Path, seconds: int) -> Path:
    """``seconds`` of 7.1 silence at 48 kHz as FLAC: tiny on disk, 768 kB a second as PCM16."""
    subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "lavfi",
         "-i", "anullsrc=r=48000:cl=7.1", "-t", str(seconds), "-c:a", "flac", str(path)],
        check=True,
    )  # fmt: skip
    return path
