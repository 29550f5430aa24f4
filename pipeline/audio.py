"""Audio in: any file or bytes ffmpeg can read, out as 16 kHz float32, one array per channel.

Decoding runs the ffmpeg/ffprobe command-line tools in subprocesses (no Python bindings to
build, and a crashing or hanging decoder cannot take the service down: it is killed after
``timeout_s``). The file is probed first, so a 10-hour recording is refused before any sample
is decoded, and a file that is not audio gets an error that says so instead of a stack trace.

Memory is bounded before decoding and while it runs: a decoded call is held as 16 kHz
float32, 64 KB per second per channel, so a 1.3 MB FLAC of one hour of 7.1 silence would
take 1.8 GB. The probe refuses more than ``audio.max_channels`` channels and a decoded size
(duration x channels x 64 KB/s) above ``audio.max_decoded_mb``; the decoder's output is
read in blocks straight into one array per channel (never the whole PCM stream as bytes),
and stops as soon as a file that lied about its length passes either limit.

Channel roles: a stereo call keeps its channels apart and ``AudioConfig.channels`` says who
speaks on which. The default ``{0: customer, 1: agent}`` follows the common recorder
convention (Amazon Contact Lens / LCA: left = caller, right = agent). Channels beyond the
map (a 4-track conference recording) are still decoded and get speaker ``unknown``; a mono
call gets ``mono_speaker``. More channels than ``audio.max_channels`` (default 4) are refused
rather than down-mixed: mixing voices that a recorder kept apart gives the recognizer
overlapping speech to untangle, so the sender is told to export the call tracks it means.

The errors are ``pipeline.audio_errors``'s and the raw-PCM helpers (``pcm16_to_float``,
``mulaw_to_float``, ``resample``, ``Upsampler``) ``pipeline.pcm``'s, both re-exported here;
the helpers serve live streams, where frames arrive as bytes without a container.
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

from callsense.pipeline.audio_errors import (
    AudioDecodeTimeout,
    AudioError,
    AudioTooLargeError,
    AudioTooLongError,
    EmptyAudioError,
    FfmpegNotFoundError,
    NotAudioError,
    TooManyChannelsError,
    TruncatedAudioError,
    UnsupportedCodecError,
    ZeroLengthAudioError,
)
from callsense.pipeline.decoder_output import run_decoder
from callsense.pipeline.model import Speaker
from callsense.pipeline.pcm import (
    SAMPLE_RATE,
    Upsampler,
    mulaw_to_float,
    pcm16_to_float,
    resample,
    upsample_8k,
)

__all__ = [
    "DECODED_BYTES_PER_SECOND",
    "SAMPLE_RATE",
    "AudioConfig",
    "AudioDecodeTimeout",
    "AudioError",
    "AudioProbe",
    "AudioTooLargeError",
    "AudioTooLongError",
    "DecodedAudio",
    "EmptyAudioError",
    "FfmpegNotFoundError",
    "NotAudioError",
    "TooManyChannelsError",
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

DECODED_BYTES_PER_SECOND = SAMPLE_RATE * 4  # one channel held as 16 kHz float32
_MB = 1024 * 1024

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

    max_duration_s: float = Field(
        default=4 * 3600.0, gt=0, allow_inf_nan=False, description="longer calls are refused"
    )
    max_channels: int = Field(
        default=4,
        ge=1,
        description="recordings with more channels are refused (each is decoded and kept apart)",
    )
    max_decoded_mb: float = Field(
        default=2048.0,
        gt=0,
        allow_inf_nan=False,
        description="largest decoded call in memory: duration x channels x 64 KB/s "
        "(4 h of stereo is 1843 MB); larger calls are refused before decoding",
    )
    channels: dict[int, Speaker] = Field(
        default_factory=_default_roles,
        description="speaker per channel index of a multi-channel call",
    )
    mono_speaker: Speaker = "customer"
    timeout_s: float = Field(
        default=600.0, gt=0, allow_inf_nan=False, description="limit per ffprobe/ffmpeg run"
    )
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
    n_ch = found.channels
    # the header may say less than the file holds: the size limit holds while decoding too
    bytes_per_frame = 4 * n_ch * (SAMPLE_RATE // rate)
    max_frames = max(1, int(cfg.max_decoded_mb * _MB) // bytes_per_frame)
    guess = found.duration if found.duration is not None else 60.0
    capacity = min(max_frames, math.ceil((guess + 1.0) * rate))
    _require(cfg.ffmpeg)
    decoded = run_decoder(
        cmd, n_ch=n_ch, capacity=capacity, max_frames=max_frames, timeout_s=cfg.timeout_s
    )
    if decoded.timed_out:
        raise AudioDecodeTimeout(
            label,
            f"decoding took longer than audio.timeout_s ({cfg.timeout_s:g} s); "
            "check the file or raise the limit",
        )
    if decoded.over_limit:
        raise AudioTooLargeError(
            label,
            f"decoded, the audio takes more than audio.max_decoded_mb ({cfg.max_decoded_mb:g} "
            "MB) though its header said less; split the recording or raise the limit",
        )
    stderr = decoded.stderr
    if any(m in stderr for m in _NO_DECODER_MARKERS):
        raise _unsupported(label, found.codec)
    if decoded.returncode != 0:
        raise NotAudioError(
            label,
            f"ffmpeg could not decode the audio ({_last_line(stderr, path)}); check the file",
        )
    frames = decoded.frames
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
        raise _truncated(label, declared, duration)
    if any(m in stderr for m in _TRUNCATION_MARKERS):
        raise TruncatedAudioError(
            label, "the file ends in the middle of an audio packet; copy or export it again"
        )
    if frames == 0:
        raise ZeroLengthAudioError(label, "the audio stream holds no samples; check the recording")
    if rate == SAMPLE_RATE:
        channels = tuple(decoded.channels)
    else:  # one channel at a time, so only one upsampled copy is ever being built
        pending = decoded.channels
        upsampled = []
        while pending:
            upsampled.append(upsample_8k(pending.pop(0)))
        channels = tuple(upsampled)
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
    not audio, holds no samples, has too many channels, or would decode too long or too
    large, before queueing it (``timeout_s``: a shorter wait, a client is waiting)."""
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
    if channels > cfg.max_channels:
        raise TooManyChannelsError(
            label,
            f"the recording has {channels} channels, more than audio.max_channels "
            f"({cfg.max_channels}); export the call's own tracks (customer and agent) "
            "or raise the limit",
        )
    raw = stream.get("duration") or info.get("format", {}).get("duration")
    value = math.inf if raw in (None, "N/A") else float(raw)
    duration = value if math.isfinite(value) else None
    found = AudioProbe(
        stream_index=int(stream["index"]),
        codec=str(codec),
        sample_rate=int(stream.get("sample_rate") or 0),
        channels=channels,
        declared_duration=None if _ESTIMATED in stderr else duration,
        duration=duration,
    )
    _check_size(found, label, cfg)
    if not duration and not _has_audio_packet(path, label, found, cfg, timeout_s):
        declared = _wav_declared_duration(path, found)
        if declared:
            raise _truncated(label, declared, 0.0)
        raise ZeroLengthAudioError(label, "the audio stream holds no samples; check the recording")
    return found


def _check_size(found: AudioProbe, label: str, cfg: AudioConfig) -> None:
    """Refuse by what the header declares; an estimate (from the file size) is left to the
    decoder's own bound, since it may be far off either way."""
    declared = found.declared_duration
    if declared is None:
        return
    if declared > cfg.max_duration_s:
        raise AudioTooLongError(
            label,
            f"the audio lasts {_hms(declared)}, more than audio.max_duration_s "
            f"({_hms(cfg.max_duration_s)}); split the recording or raise the limit",
        )
    mb = declared * found.channels * DECODED_BYTES_PER_SECOND / _MB
    if mb > cfg.max_decoded_mb:
        raise AudioTooLargeError(
            label,
            f"decoded, {_hms(declared)} of {found.channels}-channel audio takes {mb:.0f} MB, "
            f"more than audio.max_decoded_mb ({cfg.max_decoded_mb:g} MB); split the "
            "recording, send fewer channels or raise the limit",
        )


def _has_audio_packet(
    path: Path, label: str, found: AudioProbe, cfg: AudioConfig, timeout_s: float | None
) -> bool:
    """Whether the audio stream holds at least one packet (reads only the first one). Asked
    when no header gives a duration: a WAV of 44 bytes says nothing, and is still empty."""
    cmd = [
        cfg.ffprobe, "-v", "error", "-of", "json",
        "-select_streams", str(found.stream_index),
        "-read_intervals", "%+#1",
        "-show_entries", "packet=size",
        str(path),
    ]  # fmt: skip
    proc = _run(cmd, label, cfg, what="probing", timeout_s=timeout_s)
    try:
        packets = json.loads(proc.stdout or b"{}").get("packets")
    except (ValueError, AttributeError):
        return True  # no answer is no proof of emptiness: the decoder will tell
    return proc.returncode != 0 or bool(packets)


def _truncated(label: str, declared: float, duration: float) -> TruncatedAudioError:
    return TruncatedAudioError(
        label,
        f"the header declares {declared:.2f} s of audio but only {duration:.2f} s is "
        "there; the file was cut short, copy or export it again",
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


def _require(program: str) -> None:
    if shutil.which(program) is None:
        raise FfmpegNotFoundError(
            f"{program!r} not found: callsense decodes audio with ffmpeg; install it "
            "(Debian/Ubuntu: apt-get install ffmpeg) or set audio.ffmpeg / audio.ffprobe"
        )


def _run(
    cmd: list[str], label: str, cfg: AudioConfig, *, what: str, timeout_s: float | None = None
) -> subprocess.CompletedProcess[bytes]:
    _require(cmd[0])
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
