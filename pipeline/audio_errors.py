"""What can be wrong with a call's audio: one exception tree, re-exported by ``pipeline.audio``.

Every input problem is an ``AudioError`` (an ``InputError``: fix the file, do not retry)
whose message starts with the file's name; ``FfmpegNotFoundError`` is the machine's fault.
"""

from __future__ import annotations

from callsense.core.errors import CallsenseError, InputError

__all__ = [
    "AudioDecodeTimeout",
    "AudioError",
    "AudioTooLargeError",
    "AudioTooLongError",
    "EmptyAudioError",
    "FfmpegNotFoundError",
    "NotAudioError",
    "TooManyChannelsError",
    "TruncatedAudioError",
    "UnsupportedCodecError",
    "ZeroLengthAudioError",
]


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


class TooManyChannelsError(AudioError):
    """More channels than ``AudioConfig.max_channels``; refused before decoding."""


class AudioTooLargeError(AudioError):
    """Decoded, the call would exceed ``AudioConfig.max_decoded_mb``; refused before decoding
    (or as soon as the decoder's output passes it, when the header said less)."""


class AudioDecodeTimeout(AudioError):
    """ffprobe or ffmpeg ran past ``AudioConfig.timeout_s``."""
