"""SenseVoice rich strings <-> tagged groups, losslessly.

SenseVoice writes ``<|LANG|><|EMOTION|><|EVENT|><|ITN|>text`` per segment, and funasr's
``merge_vad`` glues several of those into one string. Real output is messier than that: tags
missing or out of order, tags in the middle of the text, language tags outside the five the
model is trained on (``<|zh/en|>``), task and end-of-event tags, ``<|SPECIAL_TOKEN_n|>``, empty
text, or tagless garbage from an untrained model. This module never raises on any of it:

* ``parse`` splits a string into ``RichGroup``\\ s whose ``raw`` pieces concatenate back to the
  input exactly (``"".join(g.raw for g in parse(s)) == s``), so nothing is ever lost;
* a tag outside the vocabulary below lands in ``RichGroup.unknown_tags`` (and in ``raw``), is
  counted (``unknown_tag_counts``) and logged once per tag name, never with the text.

Group boundaries, the one rule a reader needs: a tag opens a new group when the current group
already holds text (anything but whitespace), or when the tag's slot (language, emotion, event,
itn) is already filled in the current group. Any ``<|name|>`` of the tokenizer's language list
fills the language slot for this purpose, though ``lang`` only ever holds a value of ``LANGS``.
Text before the first tag is a group with no tags. ``text`` is the group's text with the
surrounding whitespace stripped and the tags removed; a literal ``<|word|>`` in spoken text
cannot be told from a tag and is read as one.

The module imports only the standard library: the CLI, the replay reader and the policy
linter import it without paying for funasr or torch.
"""

from __future__ import annotations

import logging
import re
import threading
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TypeVar

from callsense.core.vocab import EMOTIONS, EVENTS, LANGUAGES

__all__ = [
    "EMOTIONS",
    "EVENTS",
    "ITNS",
    "LANGS",
    "TAG_RE",
    "TOKENIZER_LANGS",
    "RichGroup",
    "display_text",
    "format_group",
    "parse",
    "parse_one",
    "plain_text",
    "reset_unknown_tag_counts",
    "slot_of",
    "unknown_tag_counts",
]

logger = logging.getLogger(__name__)
_T = TypeVar("_T")

LANGS = LANGUAGES  # one vocabulary for the parser and the policy language (core.vocab)
ITNS: tuple[str, ...] = ("withitn", "woitn")

# The 105 language tags of the real tokenizer (ids 24884-24988) plus nospeech. Only LANGS are
# values of ``lang``; the others are reported as unknown but still mark a group's start.
_TOKENIZER_LANG_NAMES = (
    "zh en zh/en en/zh yue minnan wuyu dialect ja de es ru ko fr pt tr pl ca nl ar sv it id "
    "hi fi vi he uk el ms cs ro da hu ta no th ur hr bg lt la mi ml cy sk te fa lv bn sr az "
    "sl kn et mk br eu is hy ne mn bs kk sq sw gl mr pa si km sn yo so af oc ka be tg sd gu "
    "am yi lo uz fo ht ps tk nn mt sa lb my bo tl mg as tt haw ln ha ba jw su nospeech"
)
TOKENIZER_LANGS: frozenset[str] = frozenset(_TOKENIZER_LANG_NAMES.split())

# A tag is ``<|name|>`` with a short identifier-like name: every tag piece of the tokenizer
# fits, while text such as ``a <| b |> c`` stays text.
TAG_RE = re.compile(r"<\|([A-Za-z0-9_/.\-]{1,48})\|>")

_SLOTS: dict[str, str] = {
    **{name: "lang" for name in LANGS},
    **{name: "emotion" for name in EMOTIONS},
    **{name: "event" for name in EVENTS},
    **{name: "itn" for name in ITNS},
}


def slot_of(name: str) -> str | None:
    """``"lang"``, ``"emotion"``, ``"event"`` or ``"itn"`` for a known tag name, else None."""
    return _SLOTS.get(name)


@dataclass(frozen=True, slots=True)
class RichGroup:
    """One ``<|LANG|><|EMOTION|><|EVENT|><|ITN|>text`` group as SenseVoice wrote it.

    ``raw`` is the exact slice of the parsed string (whitespace and odd tags included);
    ``unknown_tags`` holds the names (without ``<|``/``|>``) of tags outside the vocabulary,
    in order of appearance.
    """

    lang: str | None
    emotion: str | None
    event: str | None
    itn: bool | None
    text: str
    raw: str
    unknown_tags: tuple[str, ...] = ()


_counts: Counter[str] = Counter()
_counts_lock = threading.Lock()


def _report_unknown(names: Iterable[str]) -> None:
    new: list[str] = []
    with _counts_lock:
        for name in names:
            if name not in _counts:
                new.append(name)
            _counts[name] += 1
    for name in new:
        logger.warning("unknown SenseVoice tag <|%s|> (kept in raw)", name)


def unknown_tag_counts() -> dict[str, int]:
    """How often each unknown tag name was parsed in this process (tag names only, no text)."""
    with _counts_lock:
        return dict(_counts)


def reset_unknown_tag_counts() -> None:
    """Forget the counts (tests; a long-running server reporting per interval)."""
    with _counts_lock:
        _counts.clear()


class _Builder:
    """Accumulates one group while ``parse`` walks the string."""

    __slots__ = ("emotion", "event", "has_text", "itn", "lang", "lang_taken", "start", "unknown")

    def __init__(self, start: int) -> None:
        self.start = start
        self.lang: str | None = None
        self.emotion: str | None = None
        self.event: str | None = None
        self.itn: bool | None = None
        self.lang_taken = False
        self.has_text = False
        self.unknown: list[str] = []

    def takes(self, name: str) -> bool:
        """Whether tag ``name`` still belongs to this group (see the module docstring)."""
        if self.has_text:
            return False
        slot = _SLOTS.get(name)
        if slot == "lang" or (slot is None and name in TOKENIZER_LANGS):
            return not self.lang_taken
        if slot == "emotion":
            return self.emotion is None
        if slot == "event":
            return self.event is None
        if slot == "itn":
            return self.itn is None
        return True

    def add(self, name: str) -> None:
        slot = _SLOTS.get(name)
        if slot == "lang":
            self.lang = name
            self.lang_taken = True
        elif slot == "emotion":
            self.emotion = name
        elif slot == "event":
            self.event = name
        elif slot == "itn":
            self.itn = name == "withitn"
        else:
            if name in TOKENIZER_LANGS:
                self.lang_taken = True
            self.unknown.append(name)

    def build(self, raw: str, end: int, text_start: int) -> RichGroup:
        # No tag follows text inside a group (it would have opened the next one), so the
        # text is simply what follows the last header tag.
        return RichGroup(
            lang=self.lang,
            emotion=self.emotion,
            event=self.event,
            itn=self.itn,
            text=raw[text_start:end].strip(),
            raw=raw[self.start : end],
            unknown_tags=tuple(self.unknown),
        )


def parse(raw: str) -> list[RichGroup]:
    """Split a SenseVoice string into groups; ``""`` gives ``[]``, any other string >= 1 group.

    Never raises on any ``str``. Unknown tags are counted and logged once per name.
    """
    groups: list[RichGroup] = []
    if not raw:
        return groups
    current = _Builder(0)
    text_start = 0  # where the current group's text begins: just after its last header tag
    pos = 0
    unknown: list[str] = []
    for match in TAG_RE.finditer(raw):
        if raw[pos : match.start()].strip():
            current.has_text = True
        name = match.group(1)
        if not current.takes(name):
            groups.append(current.build(raw, match.start(), text_start))
            current = _Builder(match.start())
        current.add(name)
        if _SLOTS.get(name) is None:
            unknown.append(name)
        pos = text_start = match.end()
    groups.append(current.build(raw, len(raw), text_start))
    if unknown:
        _report_unknown(unknown)
    return groups


def _first(values: Iterable[_T | None]) -> _T | None:
    return next((v for v in values if v is not None), None)


def parse_one(raw: str) -> RichGroup:
    """Read a string as ONE utterance, whatever groups it holds.

    For a single VAD segment (the recognizer output, a JSONL record): each tag slot comes from
    the first group that has it, texts are joined with a space, unknown tags are all kept, and
    ``raw`` is the whole input. ``""`` gives an empty group with no tags.
    """
    groups = parse(raw)
    if len(groups) == 1:
        return groups[0]

    return RichGroup(
        lang=_first(g.lang for g in groups),
        emotion=_first(g.emotion for g in groups),
        event=_first(g.event for g in groups),
        itn=_first(g.itn for g in groups),
        text=" ".join(g.text for g in groups if g.text),
        raw=raw,
        unknown_tags=tuple(name for g in groups for name in g.unknown_tags),
    )


def format_group(
    lang: str | None,
    emotion: str | None,
    event: str | None,
    itn: bool | None,
    text: str,
    unknown_tags: Iterable[str] = (),
) -> str:
    """The inverse of ``parse`` for one group: tags in SenseVoice's order, unknown ones last.

    ``parse(format_group(...))`` gives the same fields back as long as ``text`` has no
    surrounding whitespace and no ``<|name|>`` inside (see ``TAG_RE``).
    """
    tags = [lang, emotion, event]
    if itn is not None:
        tags.append("withitn" if itn else "woitn")
    tags.extend(unknown_tags)
    return "".join(f"<|{name}|>" for name in tags if name is not None) + text


def plain_text(raw: str) -> str:
    """The spoken text only: every tag removed, groups joined with a space."""
    return " ".join(g.text for g in parse(raw) if g.text)


# Display only (CLI, web UI); policies match the tags themselves.
_EMOTION_EMOJI = {
    "HAPPY": "😊",
    "SAD": "😔",
    "ANGRY": "😡",
    "FEARFUL": "😰",
    "DISGUSTED": "🤢",
    "SURPRISED": "😮",
}
_EVENT_EMOJI = {
    "BGM": "🎼",
    "Applause": "👏",
    "Laughter": "😀",
    "Cry": "😭",
    "Sneeze": "🤧",
    "Cough": "😷",
    "Breath": "💨",
    "Sing": "🎤",
}


def display_text(raw: str) -> str:
    """Text with the event as a leading and the emotion as a trailing emoji, per group."""
    parts = []
    for g in parse(raw):
        shown = (
            _EVENT_EMOJI.get(g.event or "", "") + g.text + _EMOTION_EMOJI.get(g.emotion or "", "")
        )
        if shown:
            parts.append(shown)
    return " ".join(parts)
