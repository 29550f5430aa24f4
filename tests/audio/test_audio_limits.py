"""Bounded memory when decoding (issue 19): channels and decoded size are checked before a
sample is decoded and again while the decoder runs; the call is held about once."""

from __future__ import annotations

import struct
import subprocess
import sys
import time
import wave
from pathlib import Path

import numpy as np
import pytest
from scipy.signal import upfirdn

from callsense.core.errors import InputError
from callsense.pipeline.audio import (
    SAMPLE_RATE,
    AudioConfig,
    AudioError,
    AudioTooLargeError,
    TooManyChannelsError,
    Upsampler,
    ZeroLengthAudioError,
    decode,
    probe,
    upsample_8k,
)
from tests.audio.conftest import ffmpeg


def _check(err: pytest.ExceptionInfo[AudioError], path: Path) -> None:
    assert isinstance(err.value, InputError)
    assert str(err.value).startswith(f"{path}: ")


def test_more_channels_than_max_channels_are_refused_before_decoding(tmp_path: Path) -> None:
    path = tmp_path / "surround.flac"  # a minute of 7.1 silence: 8 channels
    ffmpeg("-f", "lavfi", "-i", "anullsrc=r=48000:cl=7.1", "-t", "60", "-c:a", "flac", str(path))
    for refuse in (probe, decode):
        with pytest.raises(TooManyChannelsError, match=r"8 channels.*max_channels \(4\)") as err:
            refuse(path)
        _check(err, path)
    assert len(decode(path, AudioConfig(max_channels=8)).channels) == 8


def test_a_call_too_large_once_decoded_is_refused_before_decoding(tmp_path: Path) -> None:
    path = tmp_path / "four.flac"  # 10 minutes x 4 channels: 146 MB as 16 kHz float32
    ffmpeg("-f", "lavfi", "-i", "anullsrc=r=16000:cl=4.0", "-t", "600", "-c:a", "flac", str(path))
    cfg = AudioConfig(max_decoded_mb=100)
    started = time.monotonic()
    with pytest.raises(AudioTooLargeError, match=r"0:10:00 of 4-channel audio takes 146 MB") as err:
        decode(path, cfg)
    assert time.monotonic() - started < 3.0
    _check(err, path)
    assert decode(path, AudioConfig(max_decoded_mb=150)).duration == pytest.approx(600.0)


def test_a_header_that_hides_the_length_is_stopped_by_the_size_limit_while_decoding(
    tmp_path: Path,
) -> None:
    # 32 s of mono: whole 4096-byte packets, so the end of the file is not a cut packet
    tone = (0.3 * np.sin(np.arange(32 * SAMPLE_RATE) / 7)).astype("<f4")
    pcm = (tone * 32767).astype("<i2").tobytes()
    fmt = struct.pack("<IHHIIHH", 16, 1, 1, SAMPLE_RATE, 2 * SAMPLE_RATE, 2, 16)
    unknown = struct.pack("<I", 0xFFFFFFFF)  # a streaming recorder's "size not known"
    path = tmp_path / "stream.wav"
    path.write_bytes(b"RIFF" + unknown + b"WAVE" + b"fmt " + fmt + b"data" + unknown + pcm)
    assert probe(path).declared_duration is None  # only estimated: nothing to refuse by
    with pytest.raises(AudioTooLargeError, match="though its header said less") as err:
        decode(path, AudioConfig(max_decoded_mb=1))  # 1 MB is 16.4 s of mono
    _check(err, path)
    assert decode(path, AudioConfig(max_decoded_mb=2)).duration == pytest.approx(32.0)


def test_probe_finds_what_upload_must_refuse(tmp_path: Path) -> None:
    """The service probes an upload before queueing it: a WAV with a header and no samples,
    and one with 99 channels, are refused there (422), not after a 202."""
    zero = tmp_path / "zero.wav"
    with wave.open(str(zero), "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(16000)
    with pytest.raises(ZeroLengthAudioError, match="no samples"):
        probe(zero)
    many = tmp_path / "many.wav"
    with wave.open(str(many), "wb") as w:
        w.setnchannels(99)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(bytes(2 * 99 * 1600))
    with pytest.raises(TooManyChannelsError, match="99 channels"):
        probe(many)


_PEAK_SCRIPT = """
import resource, sys
from callsense.pipeline.audio import decode
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
audio = decode(sys.argv[1])
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print((after - before) * 1024, sum(c.nbytes for c in audio.channels))
"""


@pytest.mark.slow
def test_decoding_holds_the_call_about_once_in_memory(tmp_path: Path) -> None:
    """The decoder's output is read block by block into the channel arrays: the peak grows by
    about the decoded call, not by the whole PCM stream as bytes plus copies of it (which
    made a 1.3 MB FLAC cost 5.8 GB)."""
    path = tmp_path / "long.flac"  # 15 minutes of stereo: 110 MB decoded
    tone = "sine=f=300:r=48000:d=900"
    ffmpeg("-f", "lavfi", "-i", tone, "-f", "lavfi", "-i", tone, "-filter_complex",
           "[0][1]join=inputs=2:channel_layout=stereo[o]", "-map", "[o]", "-c:a", "flac",
           str(path))  # fmt: skip
    done = subprocess.run(
        [sys.executable, "-c", _PEAK_SCRIPT, str(path)], capture_output=True, text=True, check=True
    )
    grown, held = (int(x) for x in done.stdout.split())
    assert held == 2 * 900 * SAMPLE_RATE * 4
    assert grown < 1.4 * held, f"peak grew by {grown / held:.2f}x the decoded call"


def test_upsampling_block_by_block_gives_the_samples_of_one_pass() -> None:
    taps = Upsampler().taps
    x = np.random.default_rng(19).uniform(-1, 1, 10_007).astype(np.float32)
    one_pass = np.clip(upfirdn(taps, x.astype(np.float64), up=2)[20 : 20 + 2 * x.size], -1, 1)
    for block in (1, 7, 1000, 1 << 18):
        assert np.array_equal(upsample_8k(x, block=block), one_pass.astype(np.float32))
