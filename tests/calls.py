"""Build stereo test calls from real recordings, with the timeline the tests expect.

A call is a list of turns (speaker, clip); turns follow each other with a gap of silence.
The customer is channel 0 and the agent channel 1 (``AudioConfig``'s default roles).
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tools.test_clips import CALL_MODEL_HELD_OUT, ClipRef, load_clip

SR = 16000
CHANNEL = {"customer": 0, "agent": 1}


@dataclass(frozen=True, slots=True)
class Turn:
    speaker: str
    start: float
    end: float
    clip: str


def held_out(cls: str, index: int) -> ClipRef:
    return CALL_MODEL_HELD_OUT[cls][index]


# Agent prompt, then three angry customer turns (RAVDESS actor 01) with agent turns between
# them: the default policy's "three consecutive ANGRY customer utterances".
ANGRY_CALL: tuple[tuple[str, ClipRef], ...] = (
    ("agent", held_out("B", 2)),
    ("customer", held_out("A", 0)),
    ("agent", held_out("B", 3)),
    ("customer", held_out("A", 1)),
    ("customer", ClipRef("ravdess_03-01-05-01-01-01-01.wav")),
    ("agent", held_out("B", 4)),
)


def build_call(
    out: Path,
    turns: tuple[tuple[str, ClipRef], ...] = ANGRY_CALL,
    *,
    gap: float = 1.2,
    lead: float = 0.5,
    telephony: bool = True,
    testdata: Path | None = None,
) -> tuple[Path, list[Turn]]:
    """Write a stereo call to ``out`` (8 kHz mu-law WAV if ``telephony``, else 16 kHz PCM)."""
    kwargs = {"testdata": testdata} if testdata is not None else {}
    clips = [(speaker, ref, load_clip(ref, **kwargs)) for speaker, ref in turns]
    total = lead + sum(len(c) / SR + gap for _, _, c in clips) + 0.5
    stereo = np.zeros((2, int(total * SR) + 1), dtype=np.float32)
    timeline: list[Turn] = []
    t = lead
    for speaker, ref, clip in clips:
        i = int(t * SR)
        stereo[CHANNEL[speaker], i : i + len(clip)] = clip
        timeline.append(Turn(speaker, t, t + len(clip) / SR, Path(ref.file).name))
        t += len(clip) / SR + gap
    interleaved = stereo.T.copy().tobytes()
    codec = ["-ar", "8000", "-c:a", "pcm_mulaw"] if telephony else ["-c:a", "pcm_s16le"]
    raw_in = ["-f", "f32le", "-ar", str(SR), "-ac", "2", "-i", "-"]
    subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-y", *raw_in, *codec, str(out)],
        input=interleaved,
        check=True,
    )
    return out, timeline
