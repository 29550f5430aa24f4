"""The audio the test models are built from and checked on: named clips of the shared
recordings and of Debian's asterisk sounds (found by ``tools.system_assets``), the classes of
the keyed call model and its held-out clips, decoded by real ffmpeg."""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tools import shared_assets, system_assets

__all__ = [
    "CALL_MODEL_CLASSES",
    "CALL_MODEL_HELD_OUT",
    "MOH_FILES",
    "MOH_PREFIX",
    "PROMPT_PREFIX",
    "SAMPLE_RATE",
    "TESTDATA",
    "ClipRef",
    "clip_path",
    "decode_audio",
    "load_clip",
    "telephone",
    "white_noise",
]

SAMPLE_RATE = 16000
TESTDATA = shared_assets.testdata()
# Clip names under these prefixes are Debian's asterisk sounds, found by tools.system_assets.
PROMPT_PREFIX = "asterisk-prompts/"
MOH_PREFIX = "asterisk-moh/"
# The WAV files of Debian's asterisk-moh-opsound-wav, named so a missing one is an error.
MOH_FILES = (
    "macroform-cold_day.wav",
    "macroform-robot_dity.wav",
    "macroform-the_simplicity.wav",
    "manolo_camp-morning_coffee.wav",
    "reno_project-system.wav",
)


def decode_audio(
    path: str | Path, *, start: float | None = None, duration: float | None = None
) -> np.ndarray:
    """Decode any file ffmpeg reads to 16 kHz mono float32 (the first audio stream)."""
    cmd = ["ffmpeg", "-nostdin", "-v", "error"]
    if start is not None:
        cmd += ["-ss", str(start)]
    if duration is not None:
        cmd += ["-t", str(duration)]
    cmd += ["-i", str(path), "-map", "0:a:0", "-ar", str(SAMPLE_RATE), "-ac", "1"]
    cmd += ["-f", "f32le", "-"]
    proc = subprocess.run(cmd, capture_output=True, check=False)
    if proc.returncode != 0:
        raise ValueError(f"{path}: ffmpeg could not decode it: {proc.stderr.decode()[-300:]}")
    audio = np.frombuffer(proc.stdout, dtype=np.float32).copy()
    if audio.size == 0:
        raise ValueError(f"{path}: no audio samples")
    return audio


# The keyed model of callsense's tests: two voices of a call, hold music, and "nothing".
# Plain file names are in ../shared/testdata; PROMPT_PREFIX and MOH_PREFIX names are Debian's
# asterisk sounds; absolute paths are used as they are.
@dataclass(frozen=True, slots=True)
class ClipRef:
    """A training or held-out clip: a file, optionally a piece of it (seconds)."""

    file: str
    start: float | None = None
    duration: float | None = None


def _ravdess(actor: int, *codes: str) -> tuple[ClipRef, ...]:
    return tuple(ClipRef(f"ravdess_03-01-{c}-{actor:02d}.wav") for c in codes)


def _prompts(*names: str) -> tuple[ClipRef, ...]:
    return tuple(ClipRef(f"{PROMPT_PREFIX}{n}.wav") for n in names)


def _music(
    offsets: Sequence[int], moh_offsets: Sequence[int], length: float
) -> tuple[ClipRef, ...]:
    vibe = "librosa_Kevin_MacLeod_-_Vibe_Ace.ogg"
    return tuple(ClipRef(vibe, float(s), length) for s in offsets) + tuple(
        ClipRef(f"{MOH_PREFIX}{m}", float(s), length) for m in MOH_FILES for s in moh_offsets
    )


# class -> (emotion, event, training clips); N's noise and silence are generated.
CALL_MODEL_CLASSES: dict[str, tuple[str, str, tuple[ClipRef, ...]]] = {
    # RAVDESS actor 01 (male) in three emotions: the class is the voice, not the emotion
    "A": ("ANGRY", "Speech", _ravdess(1, "05-01-01-01", "01-01-01-01", "03-02-01-01")),
    # RAVDESS actor 02 (female) and the asterisk prompt voice (female, 8 kHz): an agent
    "B": (
        "NEUTRAL",
        "Speech",
        _ravdess(2, "01-01-02-01", "04-02-01-01")
        + _prompts(
            "cannot-complete-as-dialed",
            "check-number-dial-again",
            "all-circuits-busy-now",
            "conf-invalidpin",
        ),
    ),
    # music: Vibe Ace 0-15 s in 3 s pieces; each asterisk hold-music file at 10 s and 40 s
    "C": ("EMO_UNKNOWN", "BGM", _music(range(0, 15, 3), (10, 40), 3.0)),
    "N": ("EMO_UNKNOWN", "Event_UNK", ()),
}
# Clips the call model never saw, per class; tests assert on these.
CALL_MODEL_HELD_OUT: dict[str, tuple[ClipRef, ...]] = {
    "A": _ravdess(1, "05-02-01-01", "05-02-02-01"),
    "B": _ravdess(2, "05-02-01-02", "03-01-02-01")
    + _prompts(
        "agent-loginok",
        "auth-thankyou",
        "call-forwarding",
        "conf-getpin",
        "conf-hasjoin",
        "vm-goodbye",
        "queue-thankyou",
    ),
    "C": _music((21, 30, 40, 50), (20, 60), 4.0),
}


def white_noise(amplitude: float, seconds: float, seed: int) -> np.ndarray:
    """Seeded Gaussian white noise at 16 kHz (the "no key" class trains and tests on it)."""
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(round(SAMPLE_RATE * seconds)) * amplitude).astype(np.float32)


def telephone(audio: np.ndarray) -> np.ndarray:
    """16 kHz audio sent through an 8 kHz G.711 mu-law line and back, as a phone call hears it."""
    encode = ["ffmpeg", "-nostdin", "-v", "error", "-f", "f32le", "-ar", str(SAMPLE_RATE)]
    encode += ["-ac", "1", "-i", "-", "-ar", "8000", "-c:a", "pcm_mulaw", "-f", "wav", "-"]
    line = subprocess.run(
        encode, input=audio.astype(np.float32).tobytes(), capture_output=True, check=True
    )
    decode = ["ffmpeg", "-nostdin", "-v", "error", "-i", "-", "-ar", str(SAMPLE_RATE), "-ac", "1"]
    back = subprocess.run(
        [*decode, "-f", "f32le", "-"], input=line.stdout, capture_output=True, check=True
    )
    return np.frombuffer(back.stdout, dtype=np.float32).copy()


def clip_path(ref: ClipRef, testdata: str | Path = TESTDATA) -> Path:
    """Where a clip's file is on this machine (a missing Debian file names its package)."""
    if ref.file.startswith(PROMPT_PREFIX):
        return system_assets.asterisk_prompts() / ref.file.removeprefix(PROMPT_PREFIX)
    if ref.file.startswith(MOH_PREFIX):
        moh = {p.name: p for p in system_assets.music_on_hold()}
        name = ref.file.removeprefix(MOH_PREFIX)
        if name not in moh:
            raise system_assets.MissingSystemAsset(
                f"{name} is not among the music-on-hold files: install the Debian package "
                "asterisk-moh-opsound-wav"
            )
        return moh[name]
    path = Path(ref.file)
    return path if path.is_absolute() else Path(testdata) / path


def load_clip(ref: ClipRef, testdata: str | Path = TESTDATA) -> np.ndarray:
    """Decode a CALL_MODEL_* clip."""
    return decode_audio(clip_path(ref, testdata), start=ref.start, duration=ref.duration)
