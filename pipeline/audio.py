"""Audio in: any file or bytes ffmpeg can read, out as 16 kHz float32, one array per channel.

Decoding runs the ffmpeg/ffprobe command-line tools in subprocesses (no Python bindings to
build, and a crashing or hanging decoder cannot take the service down: it is killed after
``timeout_s``). The file is probed first, so a 10-hour recording is refused before any sample
is decoded, and a file that is not audio gets an error that says so instead of a stack trace.

Channel roles: a stereo call keeps its channels apart and ``AudioConfig.channels`` says who
speaks on which. The default ``{0: customer, 1: agent}`` follows the common recorder
convention (Amazon Contact Lens / LCA: left = caller, right = agent). Channels beyond the
map (a 4-track conference recording) are still decoded and get speaker ``unknown``; a mono
call gets ``mono_speaker``.

The raw-PCM helpers at the end (``pcm16_to_float``, ``mulaw_to_float``, ``resample``) serve
live streams, where frames arrive as bytes without a container.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import struct
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, Field
from scipy.signal import firwin, lfilter, resample_poly, upfirdn

from callsense.core.errors import CallsenseError, InputError
from callsense.pipeline.model import Speaker

__all__ = [
    "SAMPLE_RATE",
    "AudioConfig",
    "AudioDecodeTimeout",
    "AudioError",
    "AudioProbe",
    "AudioTooLongError",
    "DecodedAudio",
    "EmptyAudioError",
    "FfmpegNotFoundError",
    "NotAudioError",
    "TruncatedAudioError",
    "UnsupportedCodecError",
    "Upsampler",
    "ZeroLengthAudioError",
    "decode",
    "mulaw_to_float",
    "pcm16_to_float",
    "probe",
    "resample",
    "speaker_for",
    "upsample_8k",
]

SAMPLE_RATE = 16000

# Shortfall between the duration a header declares and what decodes before we call a file
# truncated: codecs pad and round (MP3 encoder delay, Vorbis pre-skip), a cut file is short
# by far more than this.
_TRUNCATION_SLACK_S = 0.25
_TRUNCATION_SLACK_FRACTION = 0.02
# ffmpeg demuxer messages that mean a packet ends past the end of the file.
_TRUNCATION_MARKERS = ("Packet corrupt", "corrupt input packet")
_NO_DECODER_MARKERS = (
    "Decoder (codec",
    "is experimental but experimental codecs are not enabled",
)
# ffprobe's duration is a guess from file size when it says this; it then says nothing about
# what the header declared.
_ESTIMATED = "Estimating duration from bitrate"


def _default_roles() -> dict[int, Speaker]:
    return {0: "customer", 1: "agent"}


class AudioConfig(BaseModel):
    """How calls are decoded and whose voice each channel carries (``audio:`` in YAML)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_duration_s: float = Field(default=4 * 3600.0, gt=0, description="longer calls are refused")
    channels: dict[int, Speaker] = Field(
        default_factory=_default_roles,
        description="speaker per channel index of a multi-channel call",
    )
    mono_speaker: Speaker = "customer"
    timeout_s: float = Field(default=600.0, gt=0, description="limit per ffprobe/ffmpeg run")
    ffmpeg: str = "ffmpeg"
    ffprobe: str = "ffprobe"


@dataclass(frozen=True, slots=True)
class DecodedAudio:
    """A whole call, decoded: ``channels[i]`` is channel i at ``sample_rate`` (16 kHz)."""

    channels: tuple[np.ndarray, ...]
    sample_rate: int
    duration: float
    source_sample_rate: int
    source_channels: int
    codec: str


class FfmpegNotFoundError(CallsenseError):
    """ffmpeg/ffprobe is not installed: the machine needs fixing, not the input."""


class AudioError(InputError):
    """A call's audio cannot be used; ``path`` names the file (or the name given to bytes)."""

    def __init__(self, path: str, message: str) -> None:
        self.path = path
        super().__init__(f"{path}: {message}")


class NotAudioError(AudioError):
    """The file holds no audio stream (random bytes, text, an image)."""


class EmptyAudioError(AudioError):
    """The file has 0 bytes."""


class ZeroLengthAudioError(AudioError):
    """A valid audio container that holds no samples."""


class TruncatedAudioError(AudioError):
    """The file ends before its header says it should (a cut upload or copy)."""


class UnsupportedCodecError(AudioError):
    """An audio stream this ffmpeg build cannot decode."""


class AudioTooLongError(AudioError):
    """Longer than ``AudioConfig.max_duration_s``; refused before decoding."""


class AudioDecodeTimeout(AudioError):
    """ffprobe or ffmpeg ran past ``AudioConfig.timeout_s``."""


def speaker_for(channel_index: int, n_channels: int, cfg: AudioConfig) -> Speaker:
    """Who speaks on a channel: ``mono_speaker`` for mono, else the role map or ``unknown``."""
    if n_channels == 1:
        return cfg.mono_speaker
    return cfg.channels.get(channel_index, "unknown")


@dataclass(frozen=True, slots=True)
class AudioProbe:
    """What ffprobe says of a file's first audio stream, before a sample is decoded."""

    stream_index: int
    codec: str
    sample_rate: int
    channels: int
    declared_duration: float | None  # None: unknown or only estimated from the file size
    duration: float | None  # ffprobe's figure, estimated or not (None: unknown)


def decode(
    source: str | os.PathLike[str] | bytes,
    cfg: AudioConfig | None = None,
    *,
    name: str | None = None,
) -> DecodedAudio:
    """Decode a file path or the bytes of a file to 16 kHz float32 channels.

    ``name`` labels bytes in error messages (an upload's file name); a path labels itself.
    Raises an ``AudioError`` subclass for bad input, ``FfmpegNotFoundError`` without ffmpeg.
    """
    cfg = cfg or AudioConfig()
    if isinstance(source, bytes | bytearray | memoryview):
        label = name or "<audio bytes>"
        suffix = Path(name).suffix if name else ""
        with tempfile.TemporaryDirectory(prefix="callsense-audio-") as tmp:
            path = Path(tmp) / f"input{suffix}"
            path.write_bytes(bytes(source))
            return _decode_path(path, label, cfg)
    return _decode_path(Path(source), name or str(source), cfg)


def _decode_path(path: Path, label: str, cfg: AudioConfig) -> DecodedAudio:
    found = probe(path, cfg, name=label)
    if found.declared_duration is not None and found.declared_duration > cfg.max_duration_s:
        raise AudioTooLongError(
            label,
            f"the audio lasts {_hms(found.declared_duration)}, more than audio.max_duration_s "
            f"({_hms(cfg.max_duration_s)}); split the recording or raise the limit",
        )
    declared = _wav_declared_duration(path, found)
    if declared is None:
        declared = found.declared_duration

    # 8 kHz telephony is upsampled here as a live stream of it is (``Upsampler``), so a
    # recording and its stream give the same samples; ffmpeg resamples every other rate
    rate = 8000 if found.sample_rate == 8000 else SAMPLE_RATE
    cmd = [
        cfg.ffmpeg, "-nostdin", "-hide_banner", "-v", "warning",
        "-i", str(path),
        "-map", f"0:{found.stream_index}",
        "-t", f"{cfg.max_duration_s + 1.0:.3f}",
        "-ar", str(rate), "-c:a", "pcm_f32le", "-f", "f32le", "pipe:1",
    ]  # fmt: skip
    proc = _run(cmd, label, cfg, what="decoding")
    stderr = proc.stderr.decode("utf-8", "replace")
    if any(m in stderr for m in _NO_DECODER_MARKERS):
        raise _unsupported(label, found.codec)
    if proc.returncode != 0:
        raise NotAudioError(
            label,
            f"ffmpeg could not decode the audio ({_last_line(stderr, path)}); check the file",
        )
    n_ch = found.channels
    data = np.frombuffer(proc.stdout, dtype="<f4")
    if not np.isfinite(data).all() or (data.size and float(np.abs(data).max()) > 1.0):
        # float recordings may hold NaN/Inf or values far outside full scale; the models
        # need finite samples in [-1, 1] (clipping is what a phone line would do too)
        data = np.clip(np.nan_to_num(data, nan=0.0, posinf=1.0, neginf=-1.0), -1.0, 1.0)
    frames = data.size // n_ch
    duration = frames / rate
    if duration > cfg.max_duration_s:  # the header did not say; the samples did
        raise AudioTooLongError(
            label,
            f"the audio lasts more than audio.max_duration_s ({_hms(cfg.max_duration_s)}); "
            "split the recording or raise the limit",
        )
    if declared is not None and declared - duration > max(
        _TRUNCATION_SLACK_S, _TRUNCATION_SLACK_FRACTION * declared
    ):
        raise TruncatedAudioError(
            label,
            f"the header declares {declared:.2f} s of audio but only {duration:.2f} s is "
            "there; the file was cut short, copy or export it again",
        )
    if any(m in stderr for m in _TRUNCATION_MARKERS):
        raise TruncatedAudioError(
            label, "the file ends in the middle of an audio packet; copy or export it again"
        )
    if frames == 0:
        raise ZeroLengthAudioError(label, "the audio stream holds no samples; check the recording")
    block = data[: frames * n_ch].reshape(frames, n_ch)
    if rate == SAMPLE_RATE:
        channels = tuple(block[:, i].copy() for i in range(n_ch))  # owned, writable
    else:
        channels = tuple(upsample_8k(block[:, i]) for i in range(n_ch))
    return DecodedAudio(
        channels=channels,
        sample_rate=SAMPLE_RATE,
        duration=duration,
        source_sample_rate=found.sample_rate,
        source_channels=n_ch,
        codec=found.codec,
    )


def probe(
    source: str | os.PathLike[str],
    cfg: AudioConfig | None = None,
    *,
    name: str | None = None,
    timeout_s: float | None = None,
) -> AudioProbe:
    """What ``decode`` checks first, without decoding: the service refuses an upload that is
    not audio before queueing it (``timeout_s``: a shorter wait, a client is waiting)."""
    path, label, cfg = Path(source), name or str(source), cfg or AudioConfig()
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise AudioError(label, "no such file; check the path") from None
    if size == 0:
        raise EmptyAudioError(label, "the file is empty (0 bytes); re-export or re-upload the call")
    cmd = [
        cfg.ffprobe, "-v", "warning", "-of", "json",
        "-show_entries",
        "stream=index,codec_type,codec_name,codec_tag_string,sample_rate,channels,duration"
        ":format=format_name,duration",
        str(path),
    ]  # fmt: skip
    proc = _run(cmd, label, cfg, what="probing", timeout_s=timeout_s)
    stderr = proc.stderr.decode("utf-8", "replace")
    if any(m in stderr for m in _NO_DECODER_MARKERS):
        codec = _codec_from_probe_text(stderr) or "of this file"
        raise _unsupported(label, codec)
    if proc.returncode != 0:
        raise NotAudioError(
            label,
            f"not an audio file ffmpeg can read ({_last_line(stderr, path)}); "
            "check that this is the call recording",
        )
    try:
        info = json.loads(proc.stdout or b"{}")
    except ValueError:
        raise NotAudioError(label, "ffprobe's answer is unreadable; check the file") from None
    streams = info.get("streams") or []
    audio = [s for s in streams if s.get("codec_type") == "audio"]
    if not audio:
        kinds = sorted({str(s.get("codec_name") or s.get("codec_type")) for s in streams})
        what = f"only {', '.join(kinds)} streams" if kinds else "no streams"
        raise NotAudioError(label, f"the file holds no audio ({what}); send the call recording")
    stream = audio[0]
    codec = stream.get("codec_name")
    if not codec:
        raise _unsupported(label, f"unknown (tag {stream.get('codec_tag_string', '?')})")
    channels = int(stream.get("channels") or 0)
    if channels < 1:
        raise _unsupported(label, codec)
    raw = stream.get("duration") or info.get("format", {}).get("duration")
    value = math.inf if raw in (None, "N/A") else float(raw)
    duration = value if math.isfinite(value) else None
    return AudioProbe(
        stream_index=int(stream["index"]),
        codec=str(codec),
        sample_rate=int(stream.get("sample_rate") or 0),
        channels=channels,
        declared_duration=None if _ESTIMATED in stderr else duration,
        duration=duration,
    )


def _wav_declared_duration(path: Path, probe: AudioProbe) -> float | None:
    """Duration a RIFF/WAVE header declares for its PCM data, read from the header itself.

    ffprobe clips a WAV's duration to the bytes present, so a WAV cut in half looks whole to
    it. Streaming recorders write 0 or 0xFFFFFFFF as the size: that declares nothing.
    """
    if not probe.codec.startswith("pcm_") or probe.sample_rate <= 0:
        return None
    try:
        with path.open("rb") as fh:
            if fh.read(12)[8:12] != b"WAVE":
                return None
            bytes_per_frame = 0
            while True:
                head = fh.read(8)
                if len(head) < 8:
                    return None
                ident, size = head[:4], int(struct.unpack("<I", head[4:])[0])
                if ident == b"fmt ":
                    fmt = fh.read(size)
                    if len(fmt) >= 14:
                        bytes_per_frame = int(struct.unpack("<H", fmt[12:14])[0])
                    fh.seek(size % 2, os.SEEK_CUR)
                elif ident == b"data":
                    if size in (0, 0xFFFFFFFF) or bytes_per_frame <= 0:
                        return None
                    return size / bytes_per_frame / probe.sample_rate
                else:
                    fh.seek(size + size % 2, os.SEEK_CUR)
    except OSError:
        return None


def _run(
    cmd: list[str], label: str, cfg: AudioConfig, *, what: str, timeout_s: float | None = None
) -> subprocess.CompletedProcess[bytes]:
    if shutil.which(cmd[0]) is None:
        raise FfmpegNotFoundError(
            f"{cmd[0]!r} not found: callsense decodes audio with ffmpeg; install it "
            "(Debian/Ubuntu: apt-get install ffmpeg) or set audio.ffmpeg / audio.ffprobe"
        )
    limit = min(cfg.timeout_s, timeout_s or cfg.timeout_s)
    try:
        return subprocess.run(cmd, capture_output=True, timeout=limit, check=False)
    except subprocess.TimeoutExpired:
        raise AudioDecodeTimeout(
            label,
            f"{what} took longer than audio.timeout_s ({cfg.timeout_s:g} s); "
            "check the file or raise the limit",
        ) from None


def _unsupported(label: str, codec: str) -> UnsupportedCodecError:
    return UnsupportedCodecError(
        label,
        f"audio codec {codec} cannot be decoded by this ffmpeg build; "
        "convert the call to WAV, FLAC, MP3 or Opus first",
    )


def _last_line(stderr: str, path: Path) -> str:
    """ffmpeg's last complaint, without the temp path it often starts with."""
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    if not lines:
        return "no details"
    return lines[-1].removeprefix(f"{path}: ")


def _codec_from_probe_text(stderr: str) -> str | None:
    """The decoder name in "[sonic @ 0x...] The decoder 'sonic' is experimental ..."."""
    match = re.search(r"decoder '([\w-]+)'|Decoder \(codec ([\w-]+)\)", stderr)
    return (match.group(1) or match.group(2)) if match else None


def _hms(seconds: float) -> str:
    s = round(seconds)
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


class Upsampler:
    """8 kHz -> 16 kHz, continuous across frames: the one upsampler of telephony audio, for
    a recording (all at once) and a live stream (frame by frame), so both give the VAD and
    the model the same samples. A polyphase filter applied per 20 ms frame would ring at
    every frame edge; this keeps its state. The filter is scipy ``resample_poly``'s for 1:2
    (Kaiser 5.0, cutoff at 8 kHz's Nyquist, 41 taps); its delay is dropped so times stay
    exact, and ``flush`` gives the delayed last samples at the end of the audio."""

    _TAPS = 41  # 2 * 10 * max(up, down) + 1, as resample_poly

    def __init__(self) -> None:
        taps = firwin(self._TAPS, 0.5, window=("kaiser", 5.0))
        self.taps = (2.0 * taps).astype(np.float64)
        self.state = np.zeros(self._TAPS - 1)
        self.skip = (self._TAPS - 1) // 2

    def __call__(self, x: np.ndarray) -> np.ndarray:
        up = np.zeros(2 * x.size, dtype=np.float64)
        up[::2] = x
        y, self.state = lfilter(self.taps, 1.0, up, zi=self.state)
        if self.skip:
            drop = min(self.skip, y.size)
            y = y[drop:]
            self.skip -= drop
        # the filter overshoots a full-scale edge a little; the models want [-1, 1]
        return np.clip(y, -1.0, 1.0).astype(np.float32)

    def flush(self) -> np.ndarray:
        """The samples still inside the filter, so the output is twice the input's length."""
        return self(np.zeros((self._TAPS - 1) // 4, dtype=np.float32))


def upsample_8k(samples: np.ndarray) -> np.ndarray:
    """A whole 8 kHz channel at 16 kHz: what ``Upsampler`` gives frame by frame and then
    ``flush``, computed at once by a polyphase filter (the same taps, several times faster)."""
    taps = Upsampler().taps
    delay = (len(taps) - 1) // 2
    y = upfirdn(taps, np.asarray(samples, dtype=np.float64), up=2)[delay : delay + 2 * samples.size]
    return np.clip(y, -1.0, 1.0).astype(np.float32)


# --- raw PCM, for live streams ------------------------------------------------------------


def pcm16_to_float(data: bytes, channels: int = 1) -> tuple[np.ndarray, ...]:
    """Interleaved little-endian signed 16-bit PCM to float32 in [-1, 1), one array per channel.

    A trailing partial frame is an error: a stream framing bug must not shift the channels.
    """
    if channels < 1:
        raise ValueError(f"channels must be >= 1 (got {channels})")
    frame = 2 * channels
    if len(data) % frame:
        raise ValueError(f"{len(data)} bytes is not a whole number of {channels}-channel frames")
    pcm = np.frombuffer(data, dtype="<i2").astype(np.float32) / 32768.0
    block = pcm.reshape(-1, channels)
    return tuple(block[:, i].copy() for i in range(channels))


def _mulaw_table() -> np.ndarray:
    """G.711 μ-law expansion of all 256 codes (ITU-T G.711; audioop left Python in 3.13)."""
    codes = ~np.arange(256, dtype=np.int32) & 0xFF
    sign = codes & 0x80
    exponent = (codes >> 4) & 0x07
    mantissa = codes & 0x0F
    magnitude = (((mantissa << 3) + 0x84) << exponent) - 0x84
    linear = np.where(sign != 0, -magnitude, magnitude)
    return (linear / 32768.0).astype(np.float32)


_MULAW = _mulaw_table()


def mulaw_to_float(data: bytes) -> np.ndarray:
    """G.711 μ-law bytes (telephony, usually 8 kHz mono) to float32 in [-1, 1)."""
    return _MULAW[np.frombuffer(data, dtype=np.uint8)]


def resample(samples: np.ndarray, src_rate: int, dst_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Polyphase resampling (scipy, a funasr dependency) with its anti-aliasing filter."""
    if src_rate <= 0 or dst_rate <= 0:
        raise ValueError(f"sample rates must be positive (got {src_rate} -> {dst_rate})")
    if src_rate == dst_rate:
        return np.asarray(samples, dtype=np.float32)
    g = math.gcd(src_rate, dst_rate)
    out: np.ndarray = resample_poly(
        np.asarray(samples, dtype=np.float32), dst_rate // g, src_rate // g
    )
    return out.astype(np.float32, copy=False)
