"""Run ffmpeg and take its float32 output into one array per channel, with bounded memory.

``capture_output`` would hold the whole interleaved stream as bytes, then numpy would copy
it per channel: three times the decoded call at the peak (a 1.3 MB FLAC of 7.1 silence
cost 5.8 GB). Here the pipe is read block by block straight into the channel arrays, so the
peak stays near the decoded call itself, and the decoder is stopped as soon as its output
passes ``max_frames`` or it runs past ``timeout_s``. What the output means (errors, labels)
is ``pipeline.audio``'s business; this module only runs and reads.
"""

from __future__ import annotations

import io
import os
import subprocess
import tempfile
import threading
from dataclasses import dataclass
from typing import IO, cast

import numpy as np

__all__ = ["DecoderOutput", "run_decoder"]

_READ_BYTES = 1 << 20  # decoder output read per block


@dataclass(slots=True)
class DecoderOutput:
    """What the decoder gave: ``channels`` are owned arrays of ``frames`` samples each."""

    channels: list[np.ndarray]
    frames: int
    returncode: int
    stderr: str
    over_limit: bool  # more than ``max_frames``: stopped, ``channels`` are incomplete
    timed_out: bool  # killed after ``timeout_s``


def run_decoder(
    cmd: list[str], *, n_ch: int, capacity: int, max_frames: int, timeout_s: float
) -> DecoderOutput:
    """Run ``cmd`` (ffmpeg writing interleaved little-endian float32 to stdout) and read
    its samples into ``n_ch`` arrays, first sized for ``capacity`` frames."""
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err, bufsize=0
        )
        timed_out = threading.Event()

        def expire() -> None:
            timed_out.set()
            proc.kill()

        timer = threading.Timer(timeout_s, expire)
        timer.start()
        stdout = proc.stdout
        assert stdout is not None
        try:
            raw = cast(io.RawIOBase, stdout)  # bufsize=0: the pipe itself, no buffer copy
            channels, frames, over = _read_pcm(raw, n_ch, capacity, max_frames)
            if over:
                proc.kill()
        except BaseException:
            proc.kill()
            raise
        finally:
            stdout.close()
            proc.wait()
            timer.cancel()
        stderr = _read_log(err)
    return DecoderOutput(channels, frames, proc.returncode, stderr, over, timed_out.is_set())


def _read_pcm(
    stream: io.RawIOBase, n_ch: int, capacity: int, max_frames: int
) -> tuple[list[np.ndarray], int, bool]:
    """Interleaved float32 from ``stream`` into ``n_ch`` arrays; ``True`` when it passed
    ``max_frames`` (the rest is not read). Samples are made finite and kept in [-1, 1]."""
    frame_bytes = 4 * n_ch
    buf = bytearray(max(1, _READ_BYTES // frame_bytes) * frame_bytes)
    view = memoryview(buf)
    out = [np.empty(capacity, dtype=np.float32) for _ in range(n_ch)]
    frames = filled = 0
    while True:
        n = stream.readinto(view[filled:])
        if not n:
            break
        filled += n
        whole = filled // frame_bytes
        if whole == 0:
            continue
        if frames + whole > max_frames:
            return out, frames, True
        block = np.frombuffer(buf, dtype="<f4", count=whole * n_ch).reshape(whole, n_ch)
        if not np.isfinite(block).all() or float(np.abs(block).max()) > 1.0:
            # float recordings may hold NaN/Inf or values far outside full scale; the models
            # need finite samples in [-1, 1] (clipping is what a phone line would do too)
            np.nan_to_num(block, copy=False, nan=0.0, posinf=1.0, neginf=-1.0)
            np.clip(block, -1.0, 1.0, out=block)
        if frames + whole > out[0].size:
            size = min(max_frames, max(frames + whole, out[0].size * 3 // 2))
            out = [_grown(a, frames, size) for a in out]
        for i, channel in enumerate(out):
            channel[frames : frames + whole] = block[:, i]
        del block
        frames += whole
        used = whole * frame_bytes
        buf[: filled - used] = buf[used:filled]
        filled -= used
    for channel in out:
        channel.resize(frames, refcheck=False)  # in place: gives back what the guess overshot
    return out, frames, False


def _grown(a: np.ndarray, used: int, size: int) -> np.ndarray:
    bigger = np.empty(size, dtype=a.dtype)
    bigger[:used] = a[:used]
    return bigger


def _read_log(fh: IO[bytes], limit: int = 256 * 1024) -> str:
    """ffmpeg's messages: all of them, or the first and last ``limit`` bytes of a flood."""
    size = fh.seek(0, os.SEEK_END)
    fh.seek(0)
    if size <= 2 * limit:
        data = fh.read()
    else:
        head = fh.read(limit)
        fh.seek(size - limit)
        data = head + b"\n...\n" + fh.read()
    return data.decode("utf-8", "replace")
