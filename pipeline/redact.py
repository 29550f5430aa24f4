"""Personal data out of transcripts before they are stored, logged or sent.

The modes follow Amazon Contact Lens' choices: ``redacted`` (only the redacted text is kept),
``redacted_and_original`` (the original is kept too, but only encrypted with a Fernet key the
operator holds in an environment variable) and ``off``. Each entity found is replaced by a
token (``[PHONE]``, ``[CARD]``, ``[EMAIL]``, ``[CN_ID]``, ``[SSN]``, ``[IBAN]``) and the text
around it is left exactly as it was.

Numbers are only redacted when they are what they claim to be, so that amounts, times and
order numbers survive: a card number must pass the Luhn check, a Chinese resident ID its
ISO 7064 MOD 11-2 check digit (and a real month/day), an IBAN its mod-97 check, an SSN the
SSA's rules (no 000/666/9xx area, no 00 group, no 0000 serial). Phones are recognised by
shape: ``+`` and 8-15 digits, US ``(415) 555-2671`` / ``415-555-2671`` / 10 digits with
valid NANP area and exchange, Chinese mobiles ``1[3-9]`` + 9 digits, and 7-12 digits
written in groups (not a date shape, not after a currency sign).

SenseVoice without ITN writes digits as words: runs of English digit words (``four one
one one ...``, ``oh`` as zero, mixed with digit groups) and of Chinese digit characters
(``一三八...``, ``幺`` as one) of 7 or more digits are read as numbers and checked the
same way; such a run that is phone-length but no card/ID is taken as a phone.

Not covered (said here so nobody relies on it): emails spoken as words ("john at example
dot com"), "double five"/"triple oh", Chinese numbers with place values (``一千三百``),
an ``X`` check character spoken as a word, IBANs in lower case or spelled as words,
national IDs of other countries, names and street addresses.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from callsense.core import richtext
from callsense.core.errors import ConfigError
from callsense.pipeline import pii_patterns as pii
from callsense.pipeline.model import Utterance
from callsense.pipeline.original_seal import OriginalSeal
from callsense.pipeline.pii_patterns import (
    EntityKind,
    cn_id_valid,
    iban_valid,
    luhn_valid,
    ssn_valid,
)

__all__ = [
    "ENTITY_KINDS",
    "TOKENS",
    "Entity",
    "EntityKind",
    "RedactionConfig",
    "RedactionResult",
    "Redactor",
    "cn_id_valid",
    "iban_valid",
    "luhn_valid",
    "ssn_valid",
]

ENTITY_KINDS: tuple[EntityKind, ...] = ("phone", "card", "email", "cn_id", "ssn", "iban")
TOKENS: dict[EntityKind, str] = {
    "phone": "[PHONE]",
    "card": "[CARD]",
    "email": "[EMAIL]",
    "cn_id": "[CN_ID]",
    "ssn": "[SSN]",
    "iban": "[IBAN]",
}


class RedactionConfig(BaseModel):
    """``redaction:`` in YAML; the key itself never sits in a file, only its variable's name."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    mode: Literal["redacted", "redacted_and_original", "off"] = "redacted"
    entities: tuple[EntityKind, ...] = Field(default=ENTITY_KINDS, min_length=1)
    original_key_env: str | None = Field(
        default=None,
        description="environment variable holding the Fernet key that encrypts the original "
        "(required by mode redacted_and_original)",
    )
    spelled_digits: bool = Field(
        default=True, description="also read digit words (ITN off) as numbers"
    )

    @model_validator(mode="after")
    def _key_for_original(self) -> RedactionConfig:
        if self.mode == "redacted_and_original" and not self.original_key_env:
            raise ValueError(
                "mode redacted_and_original needs original_key_env: the name of an environment "
                "variable holding a Fernet key (python -c 'from cryptography.fernet import "
                "Fernet; print(Fernet.generate_key().decode())')"
            )
        return self


@dataclass(frozen=True, slots=True)
class Entity:
    """One redacted span: offsets into the ORIGINAL text; the value itself is never kept."""

    kind: EntityKind
    start: int
    end: int


@dataclass(frozen=True, slots=True)
class RedactionResult:
    """The redacted text, what was found, and (mode redacted_and_original) the sealed original.

    ``original`` is a Fernet token, set only when something was redacted; nothing here holds
    a plain personal value, so the repr is safe to log.
    """

    text: str
    entities: tuple[Entity, ...] = ()
    original: str | None = None

    @property
    def changed(self) -> bool:
        return bool(self.entities)


def _replaced(text: str, entities: tuple[Entity, ...]) -> str:
    """``text`` with each of ``entities`` (in order, without overlaps) replaced by its token."""
    if not entities:
        return text
    parts: list[str] = []
    pos = 0
    for e in entities:
        parts.append(text[pos : e.start])
        parts.append(TOKENS[e.kind])
        pos = e.end
    parts.append(text[pos:])
    return "".join(parts)


class Redactor:
    """Compiled detectors for one ``RedactionConfig`` plus the Fernet key of its originals.

    Build one at start-up: a missing or malformed key for ``redacted_and_original`` is a
    ``ConfigError`` then, not a surprise on the first call.
    """

    __slots__ = ("_seal", "cfg", "kinds")

    def __init__(
        self, cfg: RedactionConfig | None = None, *, environ: Mapping[str, str] | None = None
    ) -> None:
        self.cfg = cfg or RedactionConfig()
        self.kinds = frozenset(self.cfg.entities)
        self._seal: OriginalSeal | None = None
        if self.cfg.mode == "redacted_and_original":
            self._seal = OriginalSeal.from_env(self.cfg.original_key_env or "", environ)

    # -- originals ------------------------------------------------------------------------

    def encrypt_original(self, text: str) -> str:
        """A Fernet token of ``text`` (mode redacted_and_original only)."""
        return self._sealing("originals are not kept, nothing to encrypt").seal(text)

    def decrypt_original(self, token: str) -> str:
        """The original text of ``token``; ``InputError`` if it was not made with this key."""
        return self._sealing("no key configured to decrypt originals").open(token)

    def _sealing(self, why_not: str) -> OriginalSeal:
        if self._seal is None:
            raise ConfigError(f"redaction.mode is {self.cfg.mode!r}: {why_not}")
        return self._seal

    # -- redaction ------------------------------------------------------------------------

    def find(self, text: str) -> tuple[Entity, ...]:
        """The entities of ``text`` in order, without overlaps (first detector wins)."""
        if self.cfg.mode == "off" or not text:
            return ()
        found: list[Entity] = []
        # One byte per character of the text, 1 where an entity already sits: checking and
        # claiming a span costs its own length, so a text with thousands of entities is
        # scanned once (comparing each new span with every one found was quadratic: 8k
        # card numbers took 14 s). Detectors still win in the order they add.
        taken = bytearray(len(text))

        def add(kind: EntityKind, start: int, end: int) -> None:
            if kind in self.kinds and taken.find(1, start, end) == -1:
                found.append(Entity(kind, start, end))
                taken[start:end] = b"\x01" * (end - start)

        if "@" in text:
            for m in pii.EMAIL_RE.finditer(text):
                add("email", m.start(), m.end())
        for kind, start, end in self._ibans(text):
            add(kind, start, end)
        # Checksums are the strongest evidence, then spoken digits ("four one five 555 2671"
        # is one phone), then phone shapes in digit runs.
        runs = [self._classify_run(text, m) for m in pii.RUN_RE.finditer(text)]
        for checked, _ in runs:
            for kind, start, end in checked:
                add(kind, start, end)
        if self.cfg.spelled_digits:
            for kind, start, end in self._spelled(text):
                add(kind, start, end)
        for _, phones in runs:
            for kind, start, end in phones:
                add(kind, start, end)
        found.sort(key=lambda e: e.start)
        return tuple(found)

    def redact(self, text: str) -> RedactionResult:
        """Replace every entity of ``text`` by its token; the rest of the text is untouched."""
        entities = self.find(text)
        if not entities:
            return RedactionResult(text)
        original = self.encrypt_original(text) if self._seal is not None else None
        return RedactionResult(_replaced(text, entities), entities, original)

    def _text_once(self, text: str, memo: dict[str, str]) -> str:
        """``text`` redacted, each distinct string once per utterance: a posted utterance's
        text, its raw string and the raw's plain text are often one string, and finding the
        entities of a long text is the costly part."""
        done = memo.get(text)
        if done is None:
            done = memo[text] = _replaced(text, self.find(text))
        return done

    def redact_raw(self, raw: str, *, memo: dict[str, str] | None = None) -> str:
        """A SenseVoice string with its texts redacted and every tag kept where it was.

        Each group's text is redacted in place. If that differs from redacting the joined
        text (a number cut across two merged groups), the string is rebuilt as one group
        with ``richtext.format_group`` around the redacted joined text: losing the group
        boundaries is better than keeping half a phone number.
        """
        if self.cfg.mode == "off" or not raw:
            return raw
        memo = {} if memo is None else memo
        pieces: list[str] = []
        for group in richtext.parse(raw):
            head_end = 0
            for m in richtext.TAG_RE.finditer(group.raw):
                if group.raw[head_end : m.start()].strip():
                    break
                head_end = m.end()
            pieces.append(group.raw[:head_end] + self._text_once(group.raw[head_end:], memo))
        out = "".join(pieces)
        expected = self._text_once(richtext.plain_text(raw), memo)
        if richtext.plain_text(out) != expected:
            g = richtext.parse_one(raw)
            out = richtext.format_group(g.lang, g.emotion, g.event, g.itn, expected, g.unknown_tags)
        return out

    def redact_utterance(self, utt: Utterance) -> Utterance:
        """``utt`` with ``text`` and ``raw`` redacted; tags, times and confidences unchanged."""
        if self.cfg.mode == "off":
            return utt
        memo: dict[str, str] = {}
        text = self._text_once(utt.text, memo)
        raw = self.redact_raw(utt.raw, memo=memo)
        if text == utt.text and raw == utt.raw:
            return utt
        original = None
        if self._seal is not None:
            sealed = json.dumps({"text": utt.text, "raw": utt.raw}, ensure_ascii=False)
            original = self.encrypt_original(sealed)
        return replace(utt, text=text, raw=raw, original=original)

    def redact_record(self, record: Mapping[str, Any]) -> dict[str, Any]:
        """A JSONL utterance record with ``text``/``raw`` redacted.

        In mode redacted_and_original the record gains ``original``: a Fernet token of
        ``{"text": ..., "raw": ...}`` as JSON (only when something was redacted).
        """
        out = dict(record)
        if self.cfg.mode == "off":
            return out
        changed = False
        text, raw = record.get("text"), record.get("raw")
        if isinstance(text, str):
            out["text"] = self.redact(text).text
            changed |= out["text"] != text
        if isinstance(raw, str):
            out["raw"] = self.redact_raw(raw)
            changed |= out["raw"] != raw
        if changed and self._seal is not None:
            sealed = json.dumps({"text": text, "raw": raw}, ensure_ascii=False)
            out["original"] = self.encrypt_original(sealed)
        return out

    # -- detectors ------------------------------------------------------------------------

    def _ibans(self, text: str) -> list[pii.Hit]:
        hits: list[pii.Hit] = []
        for m in pii.IBAN_RE.finditer(text):
            chunk = m.group(0)
            # Longest prefix ending at a chunk boundary that validates ("...3000 OK" -> drop OK).
            ends = [i for i in range(len(chunk), 0, -1) if i == len(chunk) or chunk[i] == " "]
            for end in ends:
                if iban_valid(chunk[:end].replace(" ", "")):
                    hits.append(("iban", m.start(), m.start() + end))
                    break
        return hits

    def _classify_run(self, text: str, m: re.Match[str]) -> tuple[list[pii.Hit], list[pii.Hit]]:
        groups = [
            pii.DigitGroup(g.start() + m.start(), g.end() + m.start(), g.group(0))
            for g in pii.GROUP_RE.finditer(m.group(0))
        ]
        plus = m.group(1) is not None
        x_end = m.end(2) if m.group(2) else None
        return self._windows(text, groups, plus=plus, x_end=x_end)

    def _windows(
        self, text: str, groups: list[pii.DigitGroup], *, plus: bool, x_end: int | None
    ) -> tuple[list[pii.Hit], list[pii.Hit]]:
        """Checked kinds (ID, card, SSN, "+" phone) first, then phones in what is left.

        A checksum is stronger evidence than a phone's shape: in "room 5 123-45-6789" the
        SSN wins over a 10-digit "phone".
        """
        n = len(groups)
        claimed = [False] * n
        hits = self._greedy(text, groups, 0, n, plus=plus, x_end=x_end, checked=True)
        phones: list[pii.Hit] = []
        k = 0  # hits and groups both run left to right: one sweep marks the claimed groups
        for _kind, start, end in hits:
            while k < n and groups[k].start < start:
                k += 1
            while k < n and groups[k].end <= end:
                claimed[k] = True
                k += 1
        i = 0
        while i < n:
            if claimed[i]:
                i += 1
                continue
            j = i
            while j < n and not claimed[j]:
                j += 1
            phones += self._greedy(text, groups, i, j, plus=plus, x_end=x_end, checked=False)
            i = j
        return hits, phones

    def _greedy(
        self,
        text: str,
        groups: list[pii.DigitGroup],
        lo: int,
        hi: int,
        *,
        plus: bool,
        x_end: int | None,
        checked: bool,
    ) -> list[pii.Hit]:
        """Left to right over groups[lo:hi]: the longest window that is an entity wins."""
        hits: list[pii.Hit] = []
        n = len(groups)
        i = lo
        while i < hi:
            for j in range(min(hi, i + pii.MAX_GROUPS), i, -1):
                hit = self._classify(
                    text,
                    groups[i:j],
                    plus=plus and i == 0,
                    x_end=x_end if j == n else None,
                    whole=(i == 0 and j == n) if checked else (i == lo and j == hi),
                    checked=checked,
                )
                if hit is not None:
                    hits.append(hit)
                    i = j
                    break
            else:
                i += 1
        return hits

    def _classify(
        self,
        text: str,
        window: list[pii.DigitGroup],
        *,
        plus: bool,
        x_end: int | None,
        whole: bool,
        checked: bool,
    ) -> pii.Hit | None:
        digits = "".join(g.digits for g in window)
        start, end = window[0].start, window[-1].end
        lens = tuple(len(g.digits) for g in window)
        seps = [text[a.end : b.start] for a, b in itertools.pairwise(window)]
        ssn_shape = lens == (3, 2, 4) and seps[0] == seps[1] and seps[0] in ("-", " ", "\u2013")
        if x_end is not None:  # glued to an X: a resident ID or nothing
            if checked and cn_id_valid(digits + "X"):
                return ("cn_id", start, x_end)
            return None
        if not checked:
            if plus or ssn_shape:  # a bad "+" number or a never-issued SSN is no phone either
                return None
            if self._phone(text, digits, lens, seps, start, whole=whole):
                if start > 0 and text[start - 1] == "(":
                    start -= 1
                return ("phone", start, end)
            return None
        if plus:
            if 8 <= len(digits) <= 15:
                return ("phone", text.rfind("+", 0, start), end)
            return None
        # Inside a longer run only card-like groups count (blocks of 3+ digits, the last may be
        # shorter): "1 2 3 4 ..." is not a card 10% of the time by chance.
        blocky = whole or min(lens[:-1], default=3) >= 3
        if blocky and len(digits) == 18 and cn_id_valid(digits):
            return ("cn_id", start, end)
        if blocky and 13 <= len(digits) <= 19 and digits[0] != "0" and luhn_valid(digits):
            return ("card", start, end)
        if ssn_shape and ssn_valid(*(g.digits for g in window)):
            return ("ssn", start, end)
        return None

    @staticmethod
    def _phone(
        text: str, digits: str, lens: tuple[int, ...], seps: list[str], start: int, *, whole: bool
    ) -> bool:
        before = text[max(0, start - 2) : start].strip()
        if before and before[-1] in pii.CURRENCY:
            return False
        if len(digits) == 11 and digits[0] == "1" and digits[1] in "3456789":
            return True  # Chinese mobile, any grouping
        nanp = len(digits) == 10 and digits[0] in "23456789" and digits[3] in "23456789"
        if nanp and lens in ((10,), (3, 3, 4), (6, 4), (3, 7)):
            return True
        if (
            len(digits) == 11
            and digits[0] == "1"
            and digits[1] in "23456789"
            and lens in ((1, 3, 3, 4), (11,))
        ):
            return True
        # Any other grouping only as a whole run: a piece of a longer number (a card that
        # failed Luhn) is not a phone.
        if not whole or len(lens) < 2 or not 7 <= len(digits) <= 12:
            return False
        if lens in ((4, 2, 2), (2, 2, 4), (4, 1, 1), (4, 1, 2), (4, 2, 1)):
            return False  # a date, not a phone
        return not any(s.strip() == "" and len(s) > 1 for s in seps)

    def _spelled(self, text: str) -> list[pii.Hit]:
        hits: list[pii.Hit] = []
        for m in pii.EN_RUN_RE.finditer(text):
            tokens = list(pii.EN_TOKEN_RE.finditer(m.group(0)))
            # "o"/"oh" only count as zero between other digit words
            while tokens and tokens[0].group(0).lower() in ("o", "oh"):
                tokens.pop(0)
            while tokens and tokens[-1].group(0).lower() in ("o", "oh"):
                tokens.pop()
            if not any(t.group(0).isalpha() for t in tokens):
                continue
            digits = "".join(
                t.group(0) if t.group(0).isdigit() else pii.EN_DIGITS[t.group(0).lower()]
                for t in tokens
            )
            kind = pii.spelled_kind(digits)
            if kind is not None:
                hits.append((kind, m.start() + tokens[0].start(), m.start() + tokens[-1].end()))
        for m in pii.ZH_RUN_RE.finditer(text):
            digits = "".join(pii.ZH_DIGITS.get(c, c) for c in m.group(0) if c != " ")
            kind = pii.spelled_kind(digits)
            if kind is not None:
                hits.append((kind, m.start(), m.end()))
        return hits
