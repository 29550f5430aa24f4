"""The data that flows between stages: small frozen records, never dicts.

``Utterance`` is one VAD segment as SenseVoice heard it. Times are seconds from the
start of the call. ``source`` says whether the segment held speech or only a sound
(laughter, a cough, music); ``raw`` is the exact SenseVoice string, kept for audits and
for tags this version does not know.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from callsense.core.vocab import SPEAKERS, Source, Speaker

__all__ = [
    "SPEAKERS",
    "CallTranscript",
    "Gap",
    "GapKind",
    "Segment",
    "Source",
    "Speaker",
    "TagConfidence",
    "Utterance",
]


@dataclass(frozen=True, slots=True)
class TagConfidence:
    """Softmax probability of the chosen tag at its output frame (None: not measured)."""

    lang: float | None = None
    emotion: float | None = None
    event: float | None = None


@dataclass(frozen=True, slots=True)
class Segment:
    """A span of one channel that the VAD kept, before recognition."""

    channel: int
    start: float
    end: float
    source: Source = "speech"
    speech_prob: float | None = None

    @property
    def duration(self) -> float:
        return self.end - self.start


@dataclass(frozen=True, slots=True)
class Utterance:
    """One segment of a call with SenseVoice's tags, in the JSONL record's shape."""

    call_id: str
    channel: int
    speaker: Speaker
    start: float
    end: float
    source: Source
    lang: str | None
    emotion: str | None
    event: str | None
    text: str
    raw: str
    confidence: TagConfidence = field(default_factory=TagConfidence)
    unknown_tags: tuple[str, ...] = ()
    # redaction mode "redacted_and_original": the unredacted text and raw, encrypted
    original: str | None = None

    @property
    def duration(self) -> float:
        return self.end - self.start


GapKind = Literal["paused", "discarded", "reconnect"]


@dataclass(frozen=True, slots=True)
class Gap:
    """Call time the platform marked as not streamed: a hold or secure pause, audio it
    discarded, a reconnect. The timeline keeps it (later audio keeps its platform time)."""

    start: float
    duration: float
    kind: GapKind

    @property
    def end(self) -> float:
        return self.start + self.duration

    def record(self) -> dict[str, float | str]:
        return {"start": round(self.start, 3), "duration": round(self.duration, 3),
                "kind": self.kind}  # fmt: skip


@dataclass(frozen=True, slots=True)
class CallTranscript:
    """All utterances of one call in the order they end (the order the stages got them),
    plus what is known of its audio."""

    call_id: str
    utterances: tuple[Utterance, ...]
    duration: float | None = None
    channels: int | None = None
    source: str | None = None
    gaps: tuple[Gap, ...] = ()
