"""SenseVoice's tag vocabulary, so policies can be checked against what the model can say."""

from __future__ import annotations

import difflib
from typing import Literal, get_args

__all__ = [
    "ABSTAIN_EMOTIONS",
    "ABSTAIN_EVENTS",
    "EMOTIONS",
    "EVENTS",
    "LANGUAGES",
    "SOURCES",
    "SPEAKERS",
    "Source",
    "Speaker",
    "suggest",
]

LANGUAGES: tuple[str, ...] = ("zh", "en", "yue", "ja", "ko", "nospeech")
EMOTIONS: tuple[str, ...] = (
    "HAPPY",
    "SAD",
    "ANGRY",
    "NEUTRAL",
    "FEARFUL",
    "DISGUSTED",
    "SURPRISED",
    "OTHER",
    "EMO_UNKNOWN",
)
EVENTS: tuple[str, ...] = (
    "Speech",
    "BGM",
    "Applause",
    "Laughter",
    "Cry",
    "Sneeze",
    "Breath",
    "Cough",
    "Sing",
    "Speech_Noise",
    "GBG",
    "Event_UNK",
)
# who spoke (a channel's role) and whether a segment held speech or only a sound
Speaker = Literal["agent", "customer", "unknown"]
Source = Literal["speech", "sound"]
SPEAKERS: tuple[Speaker, ...] = get_args(Speaker)
SOURCES: tuple[Source, ...] = get_args(Source)

# The model's way of saying "I cannot tell": such a tag neither satisfies nor breaks a rule.
ABSTAIN_EMOTIONS = frozenset({"EMO_UNKNOWN"})
ABSTAIN_EVENTS = frozenset({"Event_UNK"})


def suggest(word: str, vocabulary: tuple[str, ...]) -> str | None:
    """Closest vocabulary entry to a misspelt tag (case-insensitive), for "did you mean" hints."""
    by_fold = {v.casefold(): v for v in vocabulary}
    if word.casefold() in by_fold:
        return by_fold[word.casefold()]
    close = difflib.get_close_matches(word.casefold(), list(by_fold), n=1, cutoff=0.6)
    return by_fold[close[0]] if close else None
