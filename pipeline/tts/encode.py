"""Reply audio out: 16 kHz 16-bit PCM WAV for the product, 8 kHz G.711 μ-law WAV for phones.

Both are written by hand (RIFF header + numpy samples): the stdlib ``wave`` module cannot
write μ-law, and ``audioop`` left Python in 3.13. Resampling reuses ``pipeline.audio``'s
polyphase filter so every stage resamples the same way.
"""

from __future__ import annotations

import enum
import os
import struct
import tempfile
from pathlib import Path

import numpy as np

from callsense.pipeline.tts.base import Audio

__all__ = [
    "OutputFormat",
    "encode",
    "float_to_int16",
    "mulaw_encode",
    "to_mulaw8k",
    "to_wav16k",
    "wav_duration",
    "write_atomic",
    "write_audio",
]

_WAVE_FORMAT_PCM = 1
_WAVE_FORMAT_MULAW = 7
_MULAW_BIAS = 0x84
_MULAW_CLIP = 32635


class OutputFormat(enum.StrEnum):
    """``wav16k``: 16 kHz pcm_s16le mono; ``mulaw8k``: 8 kHz pcm_mulaw mono (telephony)."""

    WAV16K = "wav16k"
    MULAW8K = "mulaw8k"


def float_to_int16(samples: np.ndarray) -> np.ndarray:
    """float32 in [-1, 1] to int16, rounded and clipped (a resampler may overshoot 1.0)."""
    scaled = np.rint(np.asarray(samples, dtype=np.float64) * 32768.0)
    out: np.ndarray = np.clip(scaled, -32768, 32767).astype("<i2")
    return out


def mulaw_encode(pcm: np.ndarray) -> np.ndarray:
    """G.711 μ-law codes of int16 samples (the classic biased-segment encoder, vectorised)."""
    x = np.asarray(pcm, dtype=np.int32)
    sign = np.where(x < 0, 0x80, 0)
    magnitude = np.minimum(np.abs(x), _MULAW_CLIP) + _MULAW_BIAS  # in [132, 32767]
    # segment = position of the highest set bit above bit 7; frexp gives bit_length exactly
    exponent = np.clip(np.frexp(magnitude.astype(np.float64))[1] - 8, 0, 7)
    mantissa = (magnitude >> (exponent + 3)) & 0x0F
    codes: np.ndarray = (~(sign | (exponent << 4) | mantissa) & 0xFF).astype(np.uint8)
    return codes


def _riff(fmt_tag: int, bits: int, rate: int, data: bytes, n_samples: int) -> bytes:
    block_align = bits // 8
    if fmt_tag == _WAVE_FORMAT_PCM:
        fmt = struct.pack("<HHIIHH", fmt_tag, 1, rate, rate * block_align, block_align, bits)
        extra = b""
    else:  # non-PCM WAV needs cbSize and a fact chunk (sample count)
        fmt = struct.pack("<HHIIHHH", fmt_tag, 1, rate, rate * block_align, block_align, bits, 0)
        extra = b"fact" + struct.pack("<II", 4, n_samples)
    pad = b"\0" if len(data) % 2 else b""
    body = (
        b"WAVE"
        + b"fmt "
        + struct.pack("<I", len(fmt))
        + fmt
        + extra
        + b"data"
        + struct.pack("<I", len(data))
        + data
        + pad
    )
    return b"RIFF" + struct.pack("<I", len(body)) + body


def _at_rate(audio: Audio, rate: int) -> np.ndarray:
    if audio.sample_rate == rate:
        return audio.samples
    from callsense.pipeline.audio import resample  # scipy import deferred to the first conversion

    return resample(audio.samples, audio.sample_rate, rate)


def to_wav16k(audio: Audio) -> bytes:
    """16 kHz, 16-bit signed little-endian, mono WAV file bytes."""
    pcm = float_to_int16(_at_rate(audio, 16000))
    return _riff(_WAVE_FORMAT_PCM, 16, 16000, pcm.tobytes(), len(pcm))


def to_mulaw8k(audio: Audio) -> bytes:
    """8 kHz G.711 μ-law mono WAV file bytes, as telephony (SIP/RTP PCMU, Asterisk) plays it."""
    codes = mulaw_encode(float_to_int16(_at_rate(audio, 8000)))
    return _riff(_WAVE_FORMAT_MULAW, 8, 8000, codes.tobytes(), len(codes))


def encode(audio: Audio, fmt: OutputFormat) -> bytes:
    """The file bytes of ``audio`` in ``fmt``."""
    return to_mulaw8k(audio) if fmt is OutputFormat.MULAW8K else to_wav16k(audio)


def write_atomic(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` so readers see the old file or the whole new one, never half of it."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        os.fchmod(fd, 0o644)  # mkstemp's 0600 would hide the reply from other users
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def write_audio(audio: Audio, path: str | os.PathLike[str], fmt: OutputFormat) -> Path:
    """Encode ``audio`` as ``fmt`` and write it to ``path`` atomically."""
    return write_atomic(path, encode(audio, fmt))


def wav_duration(data: bytes) -> float:
    """Seconds of audio in a WAV this module wrote (reads fmt and data sizes from the header)."""
    pos, byte_rate = 12, 0
    while pos + 8 <= len(data):
        chunk = data[pos : pos + 4]
        size = int(struct.unpack_from("<I", data, pos + 4)[0])
        if chunk == b"fmt ":
            byte_rate = int(struct.unpack_from("<I", data, pos + 16)[0])
        elif chunk == b"data" and byte_rate:
            return float(size) / byte_rate
        pos += 8 + size + (size % 2)
    raise ValueError("not a WAV file with fmt and data chunks")
