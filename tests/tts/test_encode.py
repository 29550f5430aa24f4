"""Output encoding: real ffmpeg decodes what we write, and agrees with our μ-law codes."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest

from callsense.pipeline.tts import (
    Audio,
    OutputFormat,
    mulaw_encode,
    to_mulaw8k,
    to_wav16k,
    write_audio,
)
from callsense.pipeline.tts.encode import float_to_int16, wav_duration, write_atomic
from tests.tts.conftest import decode_f32, probe


def _tone(freq: float, seconds: float, rate: int, amp: float = 0.5) -> Audio:
    t = np.arange(int(seconds * rate)) / rate
    return Audio((amp * np.sin(2 * np.pi * freq * t)).astype(np.float32), rate)


def _peak_hz(samples: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    return float(np.fft.rfftfreq(len(samples), 1 / rate)[np.argmax(spectrum)])


def test_wav16k_decodes_as_16k_s16le_mono_with_the_same_tone(tmp_path: Path) -> None:
    path = write_audio(_tone(440, 1.5, 22050), tmp_path / "r.wav", OutputFormat.WAV16K)
    info = probe(path)
    assert (info["codec"], info["rate"], info["channels"]) == ("pcm_s16le", 16000, 1)
    assert info["duration"] == pytest.approx(1.5, abs=0.01)
    decoded = decode_f32(path, 16000)
    assert abs(_peak_hz(decoded, 16000) - 440) < 2
    assert np.max(np.abs(decoded)) == pytest.approx(0.5, abs=0.02)


def test_mulaw8k_decodes_as_8k_pcm_mulaw_with_the_same_tone(tmp_path: Path) -> None:
    audio = _tone(1000, 2.0, 16000)
    path = write_audio(audio, tmp_path / "phone.wav", OutputFormat.MULAW8K)
    info = probe(path)
    assert (info["codec"], info["rate"], info["channels"]) == ("pcm_mulaw", 8000, 1)
    assert info["duration"] == pytest.approx(2.0, abs=0.01)
    decoded = decode_f32(path, 8000)
    assert len(decoded) == 16000
    assert abs(_peak_hz(decoded, 8000) - 1000) < 2
    ref = _tone(1000, 2.0, 8000).samples
    snr = 10 * np.log10(np.sum(ref**2) / np.sum((decoded - ref) ** 2))
    assert snr > 30  # G.711 gives ~38 dB on a loud tone; a wrong table gives noise


def test_mulaw_codes_match_ffmpeg_within_one_step_for_every_int16() -> None:
    every = np.arange(-32768, 32768, dtype=np.int16)
    ours = mulaw_encode(every)
    theirs = np.frombuffer(
        subprocess.run(
            ["ffmpeg", "-v", "error", "-f", "s16le", "-ar", "8000", "-ac", "1", "-i", "-",
             "-c:a", "pcm_mulaw", "-f", "mulaw", "-"],
            input=every.tobytes(), capture_output=True, check=True,
        ).stdout,
        dtype=np.uint8,
    )  # fmt: skip
    assert len(theirs) == len(ours)
    # ffmpeg rounds to the nearest level, G.711 truncates: codes may differ by one step only
    same_sign = (ours & 0x80) == (theirs & 0x80)
    step = np.abs((ours & 0x7F).astype(int) - (theirs & 0x7F).astype(int))
    assert np.all(same_sign | (np.abs(every.astype(int)) < 8))
    assert step.max() <= 1
    assert np.mean(ours == theirs) > 0.98


def test_mulaw_known_codes() -> None:
    codes = mulaw_encode(np.array([0, -1, 32767, -32768, 1000, -1000], dtype=np.int16))
    # G.711: silence is 0xFF, full scale 0x80 / 0x00, sign in bit 7 (inverted)
    assert codes[0] == 0xFF
    assert codes[1] == 0x7F
    assert codes[2] == 0x80
    assert codes[3] == 0x00
    assert codes[4] ^ codes[5] == 0x80


def test_float_to_int16_clips_overshoot() -> None:
    pcm = float_to_int16(np.array([1.2, -1.5, 0.0, 0.5], dtype=np.float32))
    assert pcm.tolist() == [32767, -32768, 0, 16384]


def test_wav_duration_reads_our_headers() -> None:
    audio = _tone(300, 0.75, 16000)
    assert wav_duration(to_wav16k(audio)) == pytest.approx(0.75)
    assert wav_duration(to_mulaw8k(audio)) == pytest.approx(0.75)
    with pytest.raises(ValueError):
        wav_duration(b"RIFF\0\0\0\0WAVE")


def test_odd_length_mulaw_is_padded_and_still_decodes(tmp_path: Path) -> None:
    audio = Audio(np.zeros(8001, dtype=np.float32), 8000)
    data = to_mulaw8k(audio)
    assert len(data) % 2 == 0
    path = tmp_path / "odd.wav"
    path.write_bytes(data)
    assert len(decode_f32(path, 8000)) == 8001


def test_write_atomic_replaces_whole_file_and_leaves_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "reply.wav"
    write_atomic(target, b"first")
    write_atomic(target, b"second version")
    assert target.read_bytes() == b"second version"
    assert sorted(p.name for p in target.parent.iterdir()) == ["reply.wav"]
    assert target.stat().st_mode & 0o044 == 0o044  # readable by the group and others


def test_audio_is_mono_and_read_only() -> None:
    src = np.ones(10, dtype=np.float32)
    audio = Audio(src, 8000)
    src[0] = 5.0
    assert audio.samples[0] == 1.0
    with pytest.raises(ValueError):
        audio.samples[1] = 0.0
    with pytest.raises(ValueError, match="mono"):
        Audio(np.zeros((2, 10), dtype=np.float32), 8000)
    with pytest.raises(ValueError, match="positive"):
        Audio(np.zeros(3, dtype=np.float32), 0)
    assert Audio.from_int16(np.array([16384, -32768], "<i2").tobytes(), 8000).samples.tolist() == [
        0.5,
        -1.0,
    ]
