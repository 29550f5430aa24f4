"""espeak-ng: the fallback that is always installed (Debian ``espeak-ng``) and speaks zh/yue/ja/ko.

The text goes to the subprocess on stdin, never on the command line, so a reply (which
may carry personal data) does not show up in the process list.
"""

from __future__ import annotations

import shutil
import struct
import subprocess

from callsense.pipeline.tts.base import Audio, TtsEngine, TtsUnavailableError
from callsense.pipeline.tts.config import EspeakSettings

__all__ = ["EspeakTts"]


class EspeakTts(TtsEngine):
    name = "espeak"
    offline = True

    def __init__(self, settings: EspeakSettings | None = None) -> None:
        self.settings = settings or EspeakSettings()
        super().__init__(self.settings.voices, {"speed_wpm": str(self.settings.speed_wpm)})

    def synthesize(self, text: str, lang: str) -> Audio:
        voice = self.voice_for(lang)
        if voice is None:
            raise TtsUnavailableError(f"espeak has no voice for language {lang!r}")
        binary = shutil.which(self.settings.binary)
        if binary is None:
            raise TtsUnavailableError(
                f"{self.settings.binary} not found; install the Debian package espeak-ng"
            )
        cmd = [binary, "-v", voice, "-s", str(self.settings.speed_wpm), "-b", "1", "--stdout"]
        try:
            proc = subprocess.run(
                cmd,
                input=text.encode("utf-8"),
                capture_output=True,
                timeout=self.settings.timeout_s,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise TtsUnavailableError(
                f"espeak-ng took longer than {self.settings.timeout_s:g} s"
            ) from None
        if proc.returncode != 0:
            err = proc.stderr.decode("utf-8", "replace").strip().splitlines()
            raise TtsUnavailableError(
                f"espeak-ng failed (exit {proc.returncode}): {err[-1] if err else 'no message'}"
            )
        return _parse_stream_wav(proc.stdout)


def _parse_stream_wav(data: bytes) -> Audio:
    """espeak-ng's ``--stdout`` WAV: its sizes are placeholders, so read up to the real end."""
    if data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise TtsUnavailableError("espeak-ng wrote no WAV data")
    pos, rate, bits, channels = 12, 0, 0, 0
    while pos + 8 <= len(data):
        chunk, size = data[pos : pos + 4], struct.unpack_from("<I", data, pos + 4)[0]
        body = pos + 8
        if chunk == b"fmt ":
            _tag, channels, rate, _br, _ba, bits = struct.unpack_from("<HHIIHH", data, body)
        elif chunk == b"data":
            if rate <= 0 or bits != 16 or channels != 1:
                raise TtsUnavailableError(
                    f"espeak-ng wrote unexpected audio ({channels} ch, {bits} bit, {rate} Hz)"
                )
            pcm = data[body : body + min(size, len(data) - body)]
            return Audio.from_int16(pcm[: len(pcm) // 2 * 2], rate)
        pos = body + size + (size % 2)
    raise TtsUnavailableError("espeak-ng wrote a WAV without audio data")
