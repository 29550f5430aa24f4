"""Hostile audio: every file gives an ``AudioError`` naming it, or decodes to sane samples.

Never another exception, never a hang: ffmpeg runs are bounded by ``AudioConfig.timeout_s``
and every case by a wall-clock limit on top. Cases run two at a time (ffmpeg is a
subprocess, so threads overlap).
"""

from __future__ import annotations

import random
import struct
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from callsense.pipeline.audio import (
    SAMPLE_RATE,
    AudioConfig,
    AudioError,
    AudioTooLongError,
    DecodedAudio,
    EmptyAudioError,
    TruncatedAudioError,
    decode,
    mulaw_to_float,
    pcm16_to_float,
)
from tests.conftest import TESTDATA
from tests.fuzz.conftest import FuzzReport

CFG = AudioConfig(timeout_s=10.0)
CASE_LIMIT_S = 20.0  # ffprobe + ffmpeg, each bounded by timeout_s


def wav_bytes(
    samples: bytes,
    *,
    fmt: int = 1,
    channels: int = 1,
    rate: int = SAMPLE_RATE,
    bits: int = 16,
    data_size: int | None = None,
) -> bytes:
    """A RIFF/WAVE file whose header says whatever we like (sizes wrap like a C writer's)."""
    block = channels * bits // 8
    fmt_chunk = struct.pack(
        "<HHIIHH", fmt, channels, rate, (rate * block) & 0xFFFFFFFF, block & 0xFFFF, bits
    )
    size = len(samples) if data_size is None else data_size
    riff = (4 + 8 + len(fmt_chunk) + 8 + size) & 0xFFFFFFFF
    return (
        b"RIFF" + struct.pack("<I", riff) + b"WAVE"
        + b"fmt " + struct.pack("<I", len(fmt_chunk)) + fmt_chunk
        + b"data" + struct.pack("<I", size) + samples
    )  # fmt: skip


def tone(seconds: float = 1.0, amplitude: float = 0.3) -> np.ndarray:
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    return (amplitude * np.sin(2 * np.pi * 440 * t)).astype(np.float32)


def pcm16(x: np.ndarray) -> bytes:
    return np.clip(np.round(x * 32767), -32768, 32767).astype("<i2").tobytes()


GOOD_WAV = wav_bytes(pcm16(tone()))


@dataclass(frozen=True, slots=True)
class Case:
    name: str  # the file name given to decode(): error messages must start with it
    data: bytes
    # extra check on a successful decode, or the error class this case must raise
    expect: type[AudioError] | Callable[[DecodedAudio], None] | None = None


@dataclass(frozen=True, slots=True)
class Outcome:
    case: Case
    ok: bool
    detail: str


def _check_decoded(audio: DecodedAudio) -> str | None:
    if audio.sample_rate != SAMPLE_RATE or not audio.channels:
        return f"bad shape: {audio.sample_rate} Hz, {len(audio.channels)} channels"
    lengths = {ch.size for ch in audio.channels}
    if len(lengths) != 1:
        return f"channels of different lengths {sorted(lengths)}"
    for ch in audio.channels:
        if ch.dtype != np.float32:
            return f"dtype {ch.dtype}"
        if not np.isfinite(ch).all():
            return "non-finite samples (NaN/Inf) in the decoded audio"
    if not (0 < audio.duration <= CFG.max_duration_s):
        return f"duration {audio.duration}"
    return None


def run_case(case: Case, source: bytes | Path | None = None) -> Outcome:
    started = time.monotonic()
    try:
        audio = decode(case.data if source is None else source, CFG, name=case.name)
    except AudioError as exc:
        if not str(exc).startswith(f"{case.name}: "):
            return Outcome(case, False, f"message does not name the file: {exc}")
        if isinstance(case.expect, type) and not isinstance(exc, case.expect):
            return Outcome(case, False, f"expected {case.expect.__name__}, got {exc!r}")
        return Outcome(case, True, type(exc).__name__)
    except Exception as exc:
        return Outcome(case, False, f"unexpected {type(exc).__name__}: {exc}")
    elapsed = time.monotonic() - started
    if isinstance(case.expect, type):
        return Outcome(case, False, f"expected {case.expect.__name__}, but it decoded")
    problem = _check_decoded(audio)
    if problem is None and callable(case.expect):
        try:
            case.expect(audio)
        except AssertionError as exc:
            problem = str(exc)
    return Outcome(
        case, problem is None, problem or f"decoded {audio.duration:.2f} s in {elapsed:.1f} s"
    )


def run_all(cases: list[Case]) -> list[Outcome]:
    """Two at a time, each bounded: a case still running after CASE_LIMIT_S is a hang."""
    outcomes: list[Outcome] = []
    pool = ThreadPoolExecutor(max_workers=2)
    try:
        futures = [(case, pool.submit(run_case, case)) for case in cases]
        for case, fut in futures:
            try:
                outcomes.append(fut.result(timeout=CASE_LIMIT_S))
            except FutureTimeout:
                outcomes.append(Outcome(case, False, f"hang: no answer after {CASE_LIMIT_S} s"))
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
    return outcomes


def report(fuzz_report: FuzzReport, target: str, outcomes: list[Outcome]) -> None:
    passed = [o for o in outcomes if o.ok]
    line = fuzz_report.add(target, len(outcomes), len(passed))
    failures = "\n".join(f"  {o.case.name}: {o.detail}" for o in outcomes if not o.ok)
    assert len(passed) == len(outcomes), f"{line}\n{failures}"


# --- the targets ----------------------------------------------------------------------------


def test_good_wav_decodes(fuzz_report: FuzzReport) -> None:
    """The harness itself: a clean file passes and keeps its samples."""

    def same_tone(audio: DecodedAudio) -> None:
        assert abs(audio.duration - 1.0) < 1e-3
        assert np.allclose(audio.channels[0], tone(), atol=2e-4)

    report(fuzz_report, "audio/baseline", run_all([Case("good.wav", GOOD_WAV, same_tone)]))


def test_truncated_files(fuzz_report: FuzzReport) -> None:
    cuts = [1, 4, 8, 11, 12, 16, 20, 24, 30, 36, 40, 43, 44, 45, 1000]
    cases = [Case(f"cut{n}.wav", GOOD_WAV[:n]) for n in cuts]
    half = len(GOOD_WAV) // 2
    cases.append(Case("half.wav", GOOD_WAV[:half], TruncatedAudioError))
    for src in ("sensevoice-example_en.mp3", "librosa_Kevin_MacLeod_-_Vibe_Ace.ogg"):
        data = (TESTDATA / src).read_bytes()
        suffix = Path(src).suffix
        for frac in (0.0005, 0.01, 0.3):
            cases.append(Case(f"cut{frac}{suffix}", data[: max(1, int(len(data) * frac))]))
    report(fuzz_report, "audio/truncated", run_all(cases))


def test_wrong_declared_sample_rates(fuzz_report: FuzzReport) -> None:
    samples = pcm16(tone())
    cases = [
        Case("rate-1hz.wav", wav_bytes(samples, rate=1), AudioTooLongError),  # 16000 s > 4 h
        Case("rate-0hz.wav", wav_bytes(samples, rate=0)),
        Case("rate-4ghz.wav", wav_bytes(samples, rate=4_000_000_000)),
        Case("rate-max.wav", wav_bytes(samples, rate=0xFFFFFFFF)),
        Case("rate-7hz.wav", wav_bytes(samples, rate=7)),
        Case("channels-0.wav", wav_bytes(samples, channels=0)),
        Case("channels-65535.wav", wav_bytes(samples, channels=65535)),
        Case("bits-0.wav", wav_bytes(samples, bits=0)),
        Case("bits-7.wav", wav_bytes(samples, bits=7)),
        Case("format-0.wav", wav_bytes(samples, fmt=0)),
        Case("format-ffff.wav", wav_bytes(samples, fmt=0xFFFF)),
    ]
    report(fuzz_report, "audio/bad-header-fields", run_all(cases))


def test_empty_file(fuzz_report: FuzzReport, tmp_path: Path) -> None:
    path = tmp_path / "empty.wav"
    path.write_bytes(b"")
    outcomes = [
        run_case(Case("empty.wav", b"", EmptyAudioError)),
        run_case(Case(str(path), b"", EmptyAudioError), source=path),
    ]
    report(fuzz_report, "audio/zero-bytes", outcomes)


def test_ten_hour_sparse_file_is_refused_fast(fuzz_report: FuzzReport, tmp_path: Path) -> None:
    """10 h declared, 1.15 GB on paper, nothing on disk: refused by the header, not decoded."""
    size = 10 * 3600 * SAMPLE_RATE * 2
    path = tmp_path / "ten-hours.wav"
    with path.open("wb") as fh:
        fh.write(wav_bytes(b"", data_size=size))
        fh.truncate(44 + size)  # sparse: the length is there, the blocks are not
    started = time.monotonic()
    outcome = run_case(Case(str(path), b"", AudioTooLongError), source=path)
    elapsed = time.monotonic() - started
    fast = elapsed < 5.0
    outcomes = [outcome, Outcome(outcome.case, fast, f"took {elapsed:.1f} s")]
    report(fuzz_report, "audio/ten-hour-sparse", outcomes)


def test_random_bytes_with_audio_names(fuzz_report: FuzzReport) -> None:
    rng = random.Random(20260801)
    cases = []
    for ext in (".wav", ".mp3", ".ogg"):
        for i in range(5):
            size = rng.choice([1, 2, 17, 100, 512, 4096, 20000])
            cases.append(Case(f"random{i}{ext}", rng.randbytes(size)))
    magics = {".wav": b"RIFF\xff\xff\xff\xffWAVEfmt ", ".mp3": b"ID3\x04\x00\x00\x00\x00\x00\x0f",
              ".ogg": b"OggS\x00\x02" + bytes(20), ".flac": b"fLaC\x00\x00\x00\x22"}  # fmt: skip
    for ext, magic in magics.items():
        for i in range(2):
            cases.append(Case(f"magic{i}{ext}", magic + rng.randbytes(rng.choice([10, 300, 5000]))))
    report(fuzz_report, "audio/random-bytes", run_all(cases))


def _within_unit(audio: DecodedAudio) -> None:
    for ch in audio.channels:
        peak = float(np.max(np.abs(ch)))
        assert peak <= 1.0, f"samples reach {peak:g}, outside [-1, 1]"


def test_loud_and_clipped_pcm(fuzz_report: FuzzReport) -> None:
    square = np.where(np.arange(SAMPLE_RATE) % 40 < 20, 1.0, -1.0).astype(np.float32)
    extremes = np.where(np.arange(SAMPLE_RATE) % 2, 32767, -32768).astype("<i2").tobytes()
    stereo = np.stack([square, -square], axis=1).reshape(-1)
    cases = [
        Case("clipped-square.wav", wav_bytes(pcm16(square)), _within_unit),
        Case("int16-extremes.wav", wav_bytes(extremes), _within_unit),
        Case("clipped-stereo.wav", wav_bytes(pcm16(stereo), channels=2), _within_unit),
        Case("loud-8bit.wav", wav_bytes(bytes([0, 255]) * 8000, bits=8), _within_unit),
        Case("float-full-scale.wav", wav_bytes(square.astype("<f4").tobytes(), fmt=3, bits=32)),
    ]
    report(fuzz_report, "audio/loud-clipped", run_all(cases))


def _float_wav(values: np.ndarray) -> bytes:
    return wav_bytes(values.astype("<f4").tobytes(), fmt=3, bits=32)


@pytest.mark.parametrize(
    "kind",
    ["nan", "inf", "huge"],
)
def test_non_finite_and_huge_float_samples(kind: str, fuzz_report: FuzzReport) -> None:
    values = tone().copy()
    if kind == "nan":
        values[::3] = np.nan
    elif kind == "inf":
        values[::3] = np.inf
    else:
        values *= 1e30  # finite, but squares to inf in the filterbank
    case = Case(f"float-{kind}.wav", _float_wav(values), _within_unit)
    report(fuzz_report, f"audio/float-{kind}", run_all([case]))


# --- raw PCM for live streams ---------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=4000), channels=st.integers(1, 4))
def _pcm_property(data: bytes, channels: int, tally: list[int]) -> None:
    tally[0] += 1
    if len(data) % (2 * channels):
        with pytest.raises(ValueError, match="whole number"):
            pcm16_to_float(data, channels)
    else:
        chans = pcm16_to_float(data, channels)
        assert len(chans) == channels
        for ch in chans:
            assert ch.dtype == np.float32 and ch.size == len(data) // (2 * channels)
            assert np.isfinite(ch).all() and (ch >= -1.0).all() and (ch < 1.0).all()
    law = mulaw_to_float(data)
    assert law.size == len(data) and np.isfinite(law).all() and (np.abs(law) <= 1.0).all()
    tally[1] += 1


def test_raw_pcm_bytes(fuzz_report: FuzzReport) -> None:
    """Any bytes: whole frames give finite samples in [-1, 1), a partial frame a ValueError."""
    tally = [0, 0]
    try:
        _pcm_property(tally=tally)
    finally:
        line = fuzz_report.add("audio/raw-pcm16+mulaw", tally[0], tally[1])
    assert tally[0] == tally[1], line
