"""Conversation dynamics of one whole call: who talked how much, silences, hold, overtalk,
interruptions, speaking rate, the emotion trend and the customer's temperature.

Pure functions on a ``CallTranscript`` (no I/O), so a recording, a live call's end and a
stored call give the same numbers from the same utterances. The thresholds, the interval
rules and the temperature model are ``callsense.core.dynamics``, shared with the policy
conditions; ``docs/dynamics.md`` defines every field. The utterances are the guarded ones:
an emotion the privacy guard removed never reaches this module, and ``emotion_speakers``
limits the emotion trend once more to the speakers the compliance settings allow.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass
from typing import Any

from callsense.core.dynamics import (
    Interval,
    Temperature,
    add_interval,
    heat_of,
    interrupts,
    is_hold,
    is_talk,
    measure,
    overtalk_spans,
    step_weight,
)
from callsense.pipeline.model import CallTranscript, Utterance

__all__ = [
    "CJK_LANGUAGES",
    "END_WEIGHT_HALF_LIFE_S",
    "CallDynamics",
    "SpeakerDynamics",
    "TemperatureTrend",
    "call_dynamics",
    "speech_units",
]

# How the call ended matters more: in the end-weighted score an utterance counts half as
# much for every this many seconds between its end and the end of the call.
END_WEIGHT_HALF_LIFE_S = 60.0
# Languages written without spaces between words: their rate is in characters.
CJK_LANGUAGES = frozenset({"zh", "yue", "ja"})

# one CJK character (Han, kana, CJK punctuation excluded), or a run of other letters/digits
_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_UNIT = re.compile(rf"[{_CJK}]|(?:(?![{_CJK}])[^\W_])+(?:['’-](?:(?![{_CJK}])[^\W_])+)*")
_HAS_CJK = re.compile(rf"[{_CJK}]")


@dataclass(frozen=True, slots=True)
class SpeakerDynamics:
    """One speaker's share of the call (all channels with that role together)."""

    talk_s: float
    talk_ratio: float | None  # share of all speakers' talk time; None: nobody talked
    utterances: int  # speech utterances (talk), not sounds or hold music
    interruptions: int  # utterances of this speaker that interrupted another party
    words: int
    words_per_minute: float | None
    chars: int
    chars_per_minute: float | None


@dataclass(frozen=True, slots=True)
class TemperatureTrend:
    """The customer's temperature over the call (-1 pleased .. 0 calm .. +1 heated)."""

    points: tuple[tuple[float, float], ...]  # (time, value) after each utterance that moved it
    per_minute: tuple[float, ...]  # value at the end of each minute of the call
    peak: float
    peak_at: float | None
    final: float
    end_weighted: float | None


@dataclass(frozen=True, slots=True)
class CallDynamics:
    """The call's dynamics; ``record`` is the summary's ``dynamics`` block."""

    duration_s: float
    not_streamed_s: float
    talk_s: float
    non_talk_s: float
    non_talk_share: float | None
    silence_s: float
    longest_silence_s: float
    longest_silence_at: float | None
    hold_s: float
    overtalk_s: float
    overtalk_count: int
    interruptions: int
    speakers: dict[str, SpeakerDynamics]
    minutes: int
    emotion_trend: dict[str, dict[str, tuple[int, ...]]]
    temperature: TemperatureTrend

    def record(self) -> dict[str, Any]:
        """JSON-ready, times and shares rounded to 3 places."""

        def r(x: float | None) -> float | None:
            return None if x is None else round(float(x), 3)

        t = self.temperature
        return {
            "duration_s": r(self.duration_s),
            "not_streamed_s": r(self.not_streamed_s),
            "talk_s": r(self.talk_s),
            "non_talk_s": r(self.non_talk_s),
            "non_talk_share": r(self.non_talk_share),
            "silence_s": r(self.silence_s),
            "longest_silence_s": r(self.longest_silence_s),
            "longest_silence_at": r(self.longest_silence_at),
            "hold_s": r(self.hold_s),
            "overtalk_s": r(self.overtalk_s),
            "overtalk_count": self.overtalk_count,
            "interruptions": self.interruptions,
            "speakers": {
                name: {
                    "talk_s": r(s.talk_s),
                    "talk_ratio": r(s.talk_ratio),
                    "utterances": s.utterances,
                    "interruptions": s.interruptions,
                    "words": s.words,
                    "words_per_minute": r(s.words_per_minute),
                    "chars": s.chars,
                    "chars_per_minute": r(s.chars_per_minute),
                }
                for name, s in self.speakers.items()
            },
            "minutes": self.minutes,
            "emotion_trend": {
                name: {key: list(row) for key, row in rows.items()}
                for name, rows in self.emotion_trend.items()
            },
            "temperature": {
                "points": [[r(a), r(b)] for a, b in t.points],
                "per_minute": [r(v) for v in t.per_minute],
                "peak": r(t.peak),
                "peak_at": r(t.peak_at),
                "final": r(t.final),
                "end_weighted": r(t.end_weighted),
            },
        }


def speech_units(text: str, lang: str | None) -> tuple[int, int]:
    """``(words, chars)`` of one utterance's text: Chinese, Cantonese and Japanese count
    characters (each CJK character one, a Latin word inside one), other languages words.
    Without a language tag, text with any CJK character counts as CJK."""
    units = len(_UNIT.findall(text))
    cjk = lang in CJK_LANGUAGES if lang and lang != "nospeech" else bool(_HAS_CJK.search(text))
    return (0, units) if cjk else (units, 0)


def _union(spans: list[Interval]) -> list[Interval]:
    union: list[Interval] = []
    for a, b in spans:
        if b > a:
            add_interval(union, a, b)
    return union


def _complement(covered: list[Interval], end: float) -> list[Interval]:
    """[0, end] minus a union: the free spans, in order."""
    free: list[Interval] = []
    t = 0.0
    for a, b in covered:
        if a > t:
            free.append((t, min(a, end)))
        t = max(t, b)
        if t >= end:
            break
    if t < end:
        free.append((t, end))
    return [(a, b) for a, b in free if b > a]


def call_dynamics(
    transcript: CallTranscript, *, emotion_speakers: frozenset[str] = frozenset({"customer"})
) -> CallDynamics:
    """The dynamics of a whole call (``docs/dynamics.md``); ``emotion_speakers``: whose
    emotions the trend may count (the compliance settings' answer)."""
    utts = transcript.utterances
    last_end = max((u.end for u in utts), default=0.0)
    duration = max(transcript.duration or 0.0, last_end)
    gaps = _union([(max(0.0, g.start), min(duration, g.end)) for g in transcript.gaps])
    not_streamed = measure(gaps)
    streamed = duration - not_streamed

    talks = [u for u in utts if is_talk(u.source, u.event)]
    parties: dict[tuple[int, str], list[Interval]] = {}
    by_speaker: dict[str, list[Interval]] = {}
    for u in talks:
        if u.end > u.start:
            add_interval(parties.setdefault((u.channel, u.speaker), []), u.start, u.end)
            add_interval(by_speaker.setdefault(u.speaker, []), u.start, u.end)
    talk = _union([iv for union in parties.values() for iv in union])
    anything = _union([(u.start, u.end) for u in utts] + gaps)
    silences = _complement(anything, duration)
    longest = max(silences, key=lambda s: (s[1] - s[0], -s[0]), default=None)
    spans = overtalk_spans(parties.values())

    interrupting: Counter[str] = Counter()
    for u in talks:
        party = (u.channel, u.speaker)
        if any(q != party and interrupts(u.start, u.end, iv) for q, iv in parties.items()):
            interrupting[u.speaker] += 1

    speakers = _speakers(utts, by_speaker, interrupting)
    minutes = math.ceil(duration / 60.0 - 1e-9) if duration > 0 else 0
    non_talk = measure(_complement(_union(talk + gaps), duration))
    return CallDynamics(
        duration_s=duration,
        not_streamed_s=not_streamed,
        talk_s=measure(talk),
        non_talk_s=non_talk,
        non_talk_share=non_talk / streamed if streamed > 0 else None,
        silence_s=measure(silences),
        longest_silence_s=longest[1] - longest[0] if longest else 0.0,
        longest_silence_at=longest[0] if longest else None,
        hold_s=measure(_union([(u.start, u.end) for u in utts if is_hold(u.event)])),
        overtalk_s=measure(spans),
        overtalk_count=len(spans),
        interruptions=sum(interrupting.values()),
        speakers=speakers,
        minutes=minutes,
        emotion_trend=_emotion_trend(utts, minutes, emotion_speakers),
        temperature=_temperature(utts, duration, minutes, "customer" in emotion_speakers),
    )


def _speakers(
    utts: tuple[Utterance, ...], talk: dict[str, list[Interval]], interrupting: Counter[str]
) -> dict[str, SpeakerDynamics]:
    total = sum(measure(iv) for iv in talk.values())
    out: dict[str, SpeakerDynamics] = {}
    for name in sorted({u.speaker for u in utts}):
        words = chars = 0
        word_s = char_s = 0.0
        for u in utts:
            if u.speaker != name or not is_talk(u.source, u.event):
                continue
            w, c = speech_units(u.text, u.lang)
            words += w
            chars += c
            word_s += u.duration if w else 0.0
            char_s += u.duration if c else 0.0
        talk_s = measure(talk.get(name, []))
        out[name] = SpeakerDynamics(
            talk_s=talk_s,
            talk_ratio=talk_s / total if total > 0 else None,
            utterances=sum(1 for u in utts if u.speaker == name and is_talk(u.source, u.event)),
            interruptions=interrupting[name],
            words=words,
            words_per_minute=words * 60.0 / word_s if word_s > 0 else None,
            chars=chars,
            chars_per_minute=chars * 60.0 / char_s if char_s > 0 else None,
        )
    return out


def _emotion_trend(
    utts: tuple[Utterance, ...], minutes: int, emotion_speakers: frozenset[str]
) -> dict[str, dict[str, tuple[int, ...]]]:
    """Per speaker, per emotion (and ``laughter``): counts per minute of the call, each
    utterance in the minute it starts in."""
    counts: dict[str, dict[str, list[int]]] = {}
    for u in utts:
        if is_hold(u.event):
            continue
        m = min(int(u.start // 60.0), max(0, minutes - 1))
        keys = []
        if (
            u.speaker in emotion_speakers
            and u.source == "speech"
            and u.emotion is not None
            and u.emotion != "EMO_UNKNOWN"
        ):
            keys.append(u.emotion)
        if u.event == "Laughter":
            keys.append("laughter")
        for key in keys:
            row = counts.setdefault(u.speaker, {}).setdefault(key, [0] * minutes)
            row[m] += 1
    return {
        speaker: {k: tuple(v) for k, v in sorted(rows.items())}
        for speaker, rows in sorted(counts.items())
    }


def _temperature(
    utts: tuple[Utterance, ...], duration: float, minutes: int, with_emotion: bool
) -> TemperatureTrend:
    """The temperature stepped through the customer's utterances in the order they end,
    as the policy conditions step it."""
    temp = Temperature()
    points: list[tuple[float, float]] = []
    weighted = weights = 0.0
    for u in sorted(utts, key=lambda u: (u.end, u.channel)):
        emotion = u.emotion if with_emotion else None
        heat = heat_of(u.speaker, u.source, emotion, u.event)
        if heat is None:
            continue
        temp.feel(heat, u.start, u.end)
        points.append((temp.at, temp.value))
        w = step_weight(u.end - u.start) * 0.5 ** ((duration - u.end) / END_WEIGHT_HALF_LIFE_S)
        weighted += w * heat
        weights += w
    peak_at, peak = max(points, key=lambda p: (p[1], -p[0]), default=(None, 0.0))
    if peak <= 0.0:
        peak_at, peak = None, 0.0  # it started at 0 and never rose above
    return TemperatureTrend(
        points=tuple(points),
        per_minute=tuple(_value_at(points, min(duration, 60.0 * (m + 1))) for m in range(minutes)),
        peak=peak,
        peak_at=peak_at,
        final=_value_at(points, duration),
        end_weighted=weighted / weights if weights > 0 else None,
    )


def _value_at(points: list[tuple[float, float]], t: float) -> float:
    """The temperature at time ``t``: the last point before it, cooled since."""
    before = [p for p in points if p[0] <= t]
    if not before:
        return 0.0
    at, value = before[-1]
    return Temperature(value, at).now(t)
