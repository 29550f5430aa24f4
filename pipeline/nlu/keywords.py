"""The built-in classifier: keywords and regexes, for Chinese, English, Cantonese,
Japanese and Korean text as SenseVoice writes it, with or without ITN.

SenseVoice without ITN writes ``i want to speak to a human``, with ITN
``I want to speak to a human.``; Chinese comes with or without ``。`` and sometimes with
spaces between characters. ``normalize`` folds all of these into one form, and phrases are
normalized the same way, so one keyword list serves both. ``\\b`` means nothing between
Chinese characters, so a CJK keyword matches as a plain substring while a Latin keyword
must not touch other Latin letters or digits (``refund`` is not found in ``refundable``;
write ``refund*`` to allow any ending).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping

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
        self._rules: list[tuple[str, re.Pattern[str]]] = []
        for intent, spec in intents.items():
            parts = [keyword_regex(k) for ks in spec.keywords.values() for k in ks]
            parts += [f"(?:{p})" for ps in spec.patterns.values() for p in ps]
            if parts:
                self._rules.append((intent, re.compile("|".join(parts), re.IGNORECASE)))

    @property
    def caps(self) -> HookCapabilities:
        return self._caps

    def classify(self, text: str, lang: str | None) -> Intent | None:
        norm = normalize(text)
        if not norm:
            return None
        for intent, rx in self._rules:
            if rx.search(norm):
                return Intent(intent, self.confidence, self.name)
        return None
