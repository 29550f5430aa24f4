"""Decoding real recordings with real ffmpeg, and every kind of bad input we refuse."""

from __future__ import annotations

import math
import random
import struct
import subprocess
import time
import wave
import zlib
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from callsense.core.errors import InputError
from callsense.pipeline.audio import (
    SAMPLE_RATE,
    AudioConfig,
    AudioDecodeTimeout,
    AudioError,
    AudioTooLongError,
    EmptyAudioError,
    FfmpegNotFoundError,
    NotAudioError,
    TruncatedAudioError,
    UnsupportedCodecError,
    ZeroLengthAudioError,
    decode,
    mulaw_to_float,
    pcm16_to_float,
    resample,
    speaker_for,
)
from tests.audio.conftest import BuiltCall, asterisk_prompt, ffmpeg, wav_seconds
from tests.conftest import TESTDATA, manifest_rows
from tools.test_clips import MOH_FILES, MOH_PREFIX, ClipRef, clip_path

ROWS = manifest_rows()


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))


# --- real recordings ---------------------------------------------------------------------


@pytest.mark.parametrize("row", ROWS, ids=[r["file"] for r in ROWS])
def test_every_testdata_file_decodes_as_the_manifest_describes(row: dict[str, str]) -> None:
    audio = decode(TESTDATA / row["file"])
    assert audio.sample_rate == SAMPLE_RATE
    assert audio.source_sample_rate == int(row["sample_rate"])
    assert audio.source_channels == int(row["channels"]) == len(audio.channels)
    assert audio.codec == row["codec"]
    # the manifest's MP3 durations are ffprobe estimates from the bitrate
    assert audio.duration == pytest.approx(float(row["duration_s"]), abs=0.1, rel=0.08)
    for ch in audio.channels:
        assert ch.dtype == np.float32 and ch.ndim == 1
        assert ch.size == round(audio.duration * SAMPLE_RATE)
        assert np.isfinite(ch).all() and np.abs(ch).max() <= 1.0
        assert _rms(ch) > 1e-3, "decoded to silence"


def test_ogg_with_cover_art_decodes_its_audio_stream() -> None:
    path = TESTDATA / "librosa_Kevin_MacLeod_-_Vibe_Ace.ogg"
    streams = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "stream=codec_type", "-of", "csv=p=0", path],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert streams[:2] == ["audio", "video"]  # the trap is really there
    audio = decode(path)
    assert audio.codec == "vorbis" and len(audio.channels) == 1
    assert audio.duration == pytest.approx(61.46, abs=0.05)


def test_testdata_stereo_call_keeps_its_channels_apart() -> None:
    audio = decode(TESTDATA / "aws-lca_Auto_Repairs_49_stereo_first40s.wav")
    left, right = audio.channels
    assert audio.source_sample_rate == 8000 and audio.duration == pytest.approx(40.0)
    # two different people: the channels are far from identical
    corr = np.corrcoef(left, right)[0, 1]
    assert abs(corr) < 0.5
    cfg = AudioConfig()
    assert [speaker_for(i, 2, cfg) for i in range(2)] == ["customer", "agent"]


def _active_seconds(x: np.ndarray, threshold: float = 0.01) -> tuple[float, float]:
    """First and last 10 ms frame whose RMS exceeds ``threshold``."""
    frames = x[: x.size // 160 * 160].reshape(-1, 160)
    loud = np.flatnonzero(np.sqrt(np.mean(frames**2, axis=1)) > threshold)
    return loud[0] * 0.01, (loud[-1] + 1) * 0.01


@pytest.mark.parametrize("fixture", ["stereo_call", "mulaw_call"])
def test_built_calls_put_each_voice_on_its_channel(
    fixture: str, request: pytest.FixtureRequest
) -> None:
    call: BuiltCall = request.getfixturevalue(fixture)
    audio = decode(call.path)
    assert audio.source_sample_rate == 8000 and audio.source_channels == 2
    assert audio.codec == ("pcm_mulaw" if fixture == "mulaw_call" else "pcm_s16le")
    assert audio.duration == pytest.approx(10.0, abs=0.01)
    customer, agent = audio.channels
    c0, c1 = _active_seconds(customer)
    a0, a1 = _active_seconds(agent)
    assert call.customer[0] - 0.05 <= c0 and c1 <= call.customer[1] + 0.05
    assert call.agent[0] - 0.05 <= a0 and a1 <= call.agent[1] + 0.05
    assert c1 < a0  # the customer has finished before the agent starts


def test_mulaw_call_sounds_like_the_pcm_call(stereo_call: BuiltCall, mulaw_call: BuiltCall) -> None:
    pcm, law = decode(stereo_call.path), decode(mulaw_call.path)
    for a, b in zip(pcm.channels, law.channels, strict=True):
        assert np.corrcoef(a, b)[0, 1] > 0.99  # μ-law is lossy, not different


def test_more_than_two_channels_decode_and_extra_ones_are_unknown(tmp_path: Path) -> None:
    out = tmp_path / "four.wav"
    names = ("activated.wav", "conf-invalid.wav", "demo-instruct.wav", "vm-repeat.wav")
    prompts = [asterisk_prompt(n) for n in names]
    inputs = [arg for p in prompts for arg in ("-i", str(p))]
    ffmpeg(*inputs, "-filter_complex", "[0][1][2][3]amerge=inputs=4[o]", "-map", "[o]", str(out))
    audio = decode(out)
    assert audio.source_channels == 4 == len(audio.channels)
    cfg = AudioConfig()
    assert [speaker_for(i, 4, cfg) for i in range(4)] == [
        "customer",
        "agent",
        "unknown",
        "unknown",
    ]
    mono = AudioConfig(mono_speaker="agent", channels={0: "agent", 1: "customer"})
    assert speaker_for(0, 1, mono) == "agent"
    assert speaker_for(0, 2, mono) == "agent" and speaker_for(1, 2, mono) == "customer"


# A fixed sample of Debian's prompts and hold music: a missing file fails, never shrinks the list.
ASTERISK_SAMPLE = (
    "activated.wav",
    "conf-invalid.wav",
    "confbridge-inc-list-vol-out.wav",
    "demo-instruct.wav",
    "is.wav",
    "screen-callee-options.wav",
    "uppercase.wav",
    "vm-last.wav",
    "vm-repeat.wav",
)


@pytest.mark.parametrize("name", [*ASTERISK_SAMPLE, MOH_FILES[0]])
def test_debian_asterisk_sounds_decode_to_their_header_length(name: str) -> None:
    moh = name in MOH_FILES
    path = clip_path(ClipRef(f"{MOH_PREFIX}{name}")) if moh else asterisk_prompt(name)
    audio = decode(path)
    assert audio.source_sample_rate == 8000
    assert audio.duration == pytest.approx(wav_seconds(path), abs=0.002)
    assert _rms(audio.channels[0]) > 1e-3


def test_bytes_decode_like_the_file() -> None:
    path = TESTDATA / "sensevoice-example_en.mp3"
    from_file = decode(path)
    from_bytes = decode(path.read_bytes(), name="upload.mp3")
    assert from_bytes.codec == "mp3"
    np.testing.assert_array_equal(from_bytes.channels[0], from_file.channels[0])


# --- bad input ---------------------------------------------------------------------------


def _png() -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + data))
        return struct.pack(">I", len(data)) + kind + data + crc

    ihdr = struct.pack(">IIBBBBB", 2, 2, 8, 2, 0, 0, 0)
    pixels = zlib.compress(b"\x00" + b"\xff\x00\x00" * 2 + b"\x00" + b"\x00\xff\x00" * 2)
    body = chunk(b"IHDR", ihdr) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")
    return b"\x89PNG\r\n\x1a\n" + body


def _write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def _check(err: pytest.ExceptionInfo[AudioError], path: Path | str) -> None:
    assert isinstance(err.value, InputError)
    assert err.value.path == str(path)
    assert str(err.value).startswith(f"{path}: ")


@pytest.mark.parametrize("name", ["noise.wav", "noise.mp3", "noise.ogg"])
def test_random_bytes_are_not_audio(tmp_path: Path, name: str) -> None:
    path = _write(tmp_path, name, random.Random(name).randbytes(30_000))
    with pytest.raises(NotAudioError) as err:
        decode(path)
    _check(err, path)


def test_text_file_is_not_audio(tmp_path: Path) -> None:
    path = _write(tmp_path, "notes.wav", b"Call notes: customer asked for a refund.\n")
    with pytest.raises(NotAudioError) as err:
        decode(path)
    _check(err, path)


@pytest.mark.parametrize("name", ["picture.png", "picture.wav"])
def test_image_is_not_audio(tmp_path: Path, name: str) -> None:
    path = _write(tmp_path, name, _png())
    with pytest.raises(NotAudioError, match="no audio") as err:
        decode(path)
    _check(err, path)


def test_empty_file(tmp_path: Path) -> None:
    path = _write(tmp_path, "empty.wav", b"")
    with pytest.raises(EmptyAudioError, match="0 bytes") as err:
        decode(path)
    _check(err, path)


def test_valid_wav_without_samples_is_zero_length(tmp_path: Path) -> None:
    path = tmp_path / "zero.wav"
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
    assert path.stat().st_size == 44
    with pytest.raises(ZeroLengthAudioError) as err:
        decode(path)
    _check(err, path)


def test_header_only_wav_is_truncated(tmp_path: Path) -> None:
    src = (TESTDATA / "speechbrain_spk1_snt1.wav").read_bytes()
    path = _write(tmp_path, "header.wav", src[:44])
    with pytest.raises(TruncatedAudioError, match=r"declares 2\.87 s") as err:
        decode(path)
    _check(err, path)


def test_wav_cut_in_half_is_truncated(tmp_path: Path) -> None:
    src = (TESTDATA / "ravdess_03-01-01-01-01-01-01.wav").read_bytes()
    path = _write(tmp_path, "half.wav", src[: len(src) // 2 + 1])
    with pytest.raises(TruncatedAudioError, match="cut short") as err:
        decode(path)
    _check(err, path)


def test_mp3_with_frame_count_cut_in_half_is_truncated(tmp_path: Path) -> None:
    whole = tmp_path / "whole.mp3"  # LAME writes a Xing/Info header with the frame count
    ffmpeg("-i", str(TESTDATA / "speechbrain_spk1_snt1.wav"), "-c:a", "libmp3lame", str(whole))
    assert decode(whole).duration == pytest.approx(2.87, abs=0.1)
    data = whole.read_bytes()
    path = _write(tmp_path, "half.mp3", data[: len(data) // 2 + 37])
    with pytest.raises(TruncatedAudioError) as err:
        decode(path)
    _check(err, path)


def test_unknown_wav_format_tag_is_unsupported(tmp_path: Path) -> None:
    data = bytearray((TESTDATA / "speechbrain_spk1_snt1.wav").read_bytes())
    data[20:22] = struct.pack("<H", 0x1234)  # WAVE format tag no codec has
    path = _write(tmp_path, "weird.wav", bytes(data))
    with pytest.raises(UnsupportedCodecError, match="codec unknown") as err:
        decode(path)
    _check(err, path)


def test_codec_this_ffmpeg_cannot_decode_is_unsupported(tmp_path: Path) -> None:
    path = tmp_path / "sonic.mkv"  # Debian's ffmpeg encodes Sonic but won't decode it
    ffmpeg("-i", str(TESTDATA / "speechbrain_spk1_snt1.wav"), "-c:a", "sonicls", "-strict", "-2",
           str(path))  # fmt: skip
    with pytest.raises(UnsupportedCodecError, match="codec sonic") as err:
        decode(path)
    _check(err, path)


def _sparse_wav(path: Path, seconds: float, rate: int, channels: int = 1) -> Path:
    """A real WAV header and a hole of zeros: hours of audio that take no disk space."""
    data_bytes = int(seconds * rate) * 2 * channels
    header = (
        b"RIFF" + struct.pack("<I", 36 + data_bytes) + b"WAVE"
        + b"fmt " + struct.pack("<IHHIIHH", 16, 1, channels, rate, rate * 2 * channels,
                                2 * channels, 16)
        + b"data" + struct.pack("<I", data_bytes)
    )  # fmt: skip
    with path.open("wb") as fh:
        fh.write(header)
        fh.truncate(len(header) + data_bytes)
    return path


def test_ten_hour_file_is_refused_before_decoding(tmp_path: Path) -> None:
    path = _sparse_wav(tmp_path / "ten_hours.wav", 10 * 3600, 8000)
    started = time.monotonic()
    with pytest.raises(AudioTooLongError, match=r"10:00:00.*max_duration_s \(4:00:00\)") as err:
        decode(path)
    assert time.monotonic() - started < 3.0  # decoding 10 h would take far longer
    _check(err, path)


def test_max_duration_comes_from_config() -> None:
    path = TESTDATA / "aws-lca_Auto_Repairs_49_stereo_first40s.wav"
    with pytest.raises(AudioTooLongError, match="0:00:30"):
        decode(path, AudioConfig(max_duration_s=30))
    assert decode(path, AudioConfig(max_duration_s=41)).duration == pytest.approx(40.0)


def test_decode_that_runs_too_long_times_out(tmp_path: Path) -> None:
    path = _sparse_wav(tmp_path / "hour.wav", 3600, 48000, channels=2)
    with pytest.raises(AudioDecodeTimeout, match="timeout_s") as err:
        decode(path, AudioConfig(timeout_s=0.3))
    _check(err, path)


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.wav"
    with pytest.raises(AudioError, match="no such file"):
        decode(path)


def test_errors_for_bytes_name_the_upload() -> None:
    with pytest.raises(NotAudioError) as err:
        decode(b"this is not audio at all", name="call-42.wav")
    _check(err, "call-42.wav")
    with pytest.raises(EmptyAudioError, match=r"^<audio bytes>: "):
        decode(b"")


def test_missing_ffmpeg_says_how_to_install_it() -> None:
    cfg = AudioConfig(ffprobe="/nonexistent/ffprobe", ffmpeg="/nonexistent/ffmpeg")
    with pytest.raises(FfmpegNotFoundError, match="apt-get install ffmpeg") as err:
        decode(TESTDATA / "speechbrain_spk1_snt1.wav", cfg)
    assert not isinstance(err.value, InputError)  # the machine is wrong, not the file


def test_audio_config_rejects_unknown_fields_and_roles() -> None:
    with pytest.raises(ValidationError, match="extra"):
        AudioConfig.model_validate({"max_duration": 10})
    with pytest.raises(ValidationError):
        AudioConfig.model_validate({"channels": {0: "caller"}})
    assert AudioConfig.model_validate({"channels": {"0": "agent"}}).channels == {0: "agent"}


# --- raw PCM for streams -----------------------------------------------------------------


def _ffmpeg_raw(src: Path, *args: str) -> bytes:
    return subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-i", str(src), *args, "pipe:1"],
        capture_output=True,
        check=True,
    ).stdout


def test_mulaw_to_float_matches_ffmpegs_g711_decoder() -> None:
    src = asterisk_prompt("conf-invalid.wav")
    law = _ffmpeg_raw(src, "-f", "mulaw")
    reference = np.frombuffer(
        subprocess.run(
            ["ffmpeg", "-v", "error", "-f", "mulaw", "-ar", "8000", "-ac", "1", "-i", "pipe:0",
             "-f", "s16le", "pipe:1"],
            input=law, capture_output=True, check=True,
        ).stdout,
        dtype="<i2",
    )  # fmt: skip
    ours = mulaw_to_float(law)
    assert ours.dtype == np.float32 and ours.size == len(law)
    np.testing.assert_array_equal(np.round(ours * 32768).astype(np.int16), reference)
    all_codes = mulaw_to_float(bytes(range(256)))
    assert all_codes.min() == pytest.approx(-32124 / 32768) and all_codes.max() == -all_codes.min()


def test_pcm16_to_float_splits_interleaved_channels() -> None:
    path = TESTDATA / "aws-lca_Auto_Repairs_49_stereo_first40s.wav"
    with wave.open(str(path)) as w:
        raw = w.readframes(w.getnframes())
    left, right = pcm16_to_float(raw, channels=2)
    # ffmpeg's own s16 -> float conversion, per channel, at the native 8 kHz
    for i, ours in enumerate((left, right)):
        ref = np.frombuffer(
            _ffmpeg_raw(path, "-af", f"pan=mono|c0=c{i}", "-c:a", "pcm_f32le", "-f", "f32le"),
            dtype="<f4",
        )
        np.testing.assert_array_equal(ours, ref)
    assert not np.array_equal(left, right)
    with pytest.raises(ValueError, match="whole number"):
        pcm16_to_float(raw[:-1], channels=2)


def test_resample_8k_to_16k_keeps_the_tone_and_16k_to_8k_removes_aliases() -> None:
    t8 = np.arange(8000) / 8000
    up = resample(np.sin(2 * math.pi * 440 * t8).astype(np.float32), 8000)
    assert up.dtype == np.float32 and up.size == 16000
    t16 = np.arange(16000) / 16000
    inner = slice(800, -800)  # away from the filter's edge effects
    assert np.max(np.abs(up[inner] - np.sin(2 * math.pi * 440 * t16)[inner])) < 0.01
    tone_6k = np.sin(2 * math.pi * 6000 * t16).astype(np.float32)  # above 8 kHz's Nyquist
    assert _rms(resample(tone_6k, 16000, 8000)[400:-400]) < 0.01
    same = resample(tone_6k, 16000, 16000)
    np.testing.assert_array_equal(same, tone_6k)
