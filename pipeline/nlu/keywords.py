"""The built-in classifier: keywords and regexes, for Chinese, English, Cantonese,
Japanese and Korean text as SenseVoice writes it, with or without ITN.

SenseVoice without ITN writes ``i want to speak to a human``, with ITN
``I want to speak to a human.``; Chinese comes with or without ``。`` and sometimes with
spaces between characters. ``normalize`` folds all of these into one form, and phrases are
normalized the same way, so one keyword list serves both. ``\\b`` means nothing between
Chinese characters, so a CJK keyword matches as a plain substring while a Latin keyword
must not touch other Latin letters or digits (``refund`` is not found in ``refundable``;
write ``refund*`` to allow any ending).

Matching costs time in proportion to the text, not to the text times the keyword list: a
keyword is looked for as a plain substring (``str.find``, a fast C scan), and its word
boundaries are checked only where it occurs. One regex alternation of every keyword, as
this was before, tried each keyword at each position while holding the GIL: a 20 MB
utterance took 45 s. Case needs no regex flag: ``normalize`` casefolds text and keywords
alike. Patterns (``patterns:``) stay regexes, searched once per utterance; the text's
length is bounded where transcripts come in (``core.wire.MAX_TEXT_CHARS``).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from callsense.pipeline.nlu.base import HookCapabilities, Intent, IntentHook
from callsense.pipeline.nlu.config import IntentSpec

__all__ = ["KeywordHook", "normalize"]

_CJK = "\u3040-\u30ff\u3100-\u312f\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff"
_LATINISH = rf"[^\W_{_CJK}]"  # a word character that is not CJK: letters with case, digits
_APOSTROPHES = re.compile(r"['`´‘’]")
_PUNCT = re.compile(r"[^\w\s*]|_")
_CJK_GAP = re.compile(rf"(?<=[{_CJK}])\s+(?=[{_CJK}])")
_SPACES = re.compile(r"\s+")
_LATIN_CHAR = re.compile(_LATINISH)


def normalize(text: str, *, keep_star: bool = False) -> str:
    """Fold width, case, punctuation, apostrophes and CJK spacing into one form."""
    t = unicodedata.normalize("NFKC", text).casefold()
    t = _APOSTROPHES.sub("", t)
    t = _PUNCT.sub(" ", t)
    if not keep_star:
        t = t.replace("*", " ")
    t = _CJK_GAP.sub("", t)
    return _SPACES.sub(" ", t).strip()


def _keyword_core(phrase: str) -> str:
    return normalize(phrase, keep_star=True).rstrip("*").strip()


def keyword_regex(phrase: str) -> str:
    """Regex source for one keyword; a trailing ``*`` lets a Latin word continue."""
    norm = normalize(phrase, keep_star=True)
    prefix = norm.endswith("*")
    norm = norm.rstrip("*").strip()
    body = re.escape(norm).replace(r"\ ", " ")
    if _LATIN_CHAR.match(norm[0]):
        body = rf"(?<!{_LATINISH})" + body
    if _LATIN_CHAR.match(norm[-1]):
        body += rf"{_LATINISH}*" if prefix else rf"(?!{_LATINISH})"
    return body


@dataclass(frozen=True, slots=True)
class _Keyword:
    """A keyword's literal text and the regex that checks its boundaries where it occurs."""

    core: str
    boundaries: re.Pattern[str]

    def found_in(self, norm: str) -> bool:
        at = norm.find(self.core)
        while at != -1:
            if self.boundaries.match(norm, at):  # the lookbehind sees the text before ``at``
                return True
            at = norm.find(self.core, at + 1)
        return False


@dataclass(frozen=True, slots=True)
class _Rule:
    intent: str
    keywords: tuple[_Keyword, ...]
    patterns: re.Pattern[str] | None

    def hits(self, norm: str) -> bool:
        if any(k.found_in(norm) for k in self.keywords):
            return True
        return self.patterns is not None and self.patterns.search(norm) is not None


class KeywordHook(IntentHook):
    """Intents in YAML order are priorities: the first intent with a hit wins."""

    capabilities = HookCapabilities(languages=None, network=False, needs_model=False)

    def __init__(
        self,
        name: str,
        intents: Mapping[str, IntentSpec],
        *,
        confidence: float = 0.9,
        languages: Iterable[str] | None = None,
    ) -> None:
        super().__init__(name)
        self.confidence = confidence
        self._caps = HookCapabilities(
            languages=frozenset(languages) if languages is not None else None
        )
        self._rules: list[_Rule] = []
        for intent, spec in intents.items():
            phrases = dict.fromkeys(k for ks in spec.keywords.values() for k in ks)
            keywords = tuple(
                _Keyword(_keyword_core(k), re.compile(keyword_regex(k))) for k in phrases
            )
            sources = [f"(?:{p})" for ps in spec.patterns.values() for p in ps]
            patterns = re.compile("|".join(sources), re.IGNORECASE) if sources else None
            if keywords or patterns is not None:
                self._rules.append(_Rule(intent, keywords, patterns))

    @property
    def caps(self) -> HookCapabilities:
        return self._caps

    def classify(self, text: str, lang: str | None) -> Intent | None:
        norm = normalize(text)
        if not norm:
            return None
        for rule in self._rules:
            if rule.hits(norm):
                return Intent(rule.intent, self.confidence, self.name)
        return None
