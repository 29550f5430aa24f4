"""What personal data looks like in a transcript: checksums (Luhn, the Chinese ID's ISO
7064 digit, SSN ranges, IBAN mod 97) and the patterns the ``Redactor`` scans with, typed and
spelled-out digit runs included. Kept apart so the detector's rules read on their own."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

EntityKind = Literal["phone", "card", "email", "cn_id", "ssn", "iban"]


def luhn_valid(digits: str) -> bool:
    """The payment-card check digit (ISO/IEC 7812-1)."""
    if not digits.isdigit():
        return False
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


CN_WEIGHTS = tuple(pow(2, 17 - i, 11) for i in range(17))
CN_CHECK = "10X98765432"


def cn_id_valid(value: str) -> bool:
    """An 18-character resident ID: a plausible birth date and the MOD 11-2 check character."""
    if len(value) != 18 or not value[:17].isdigit() or value[0] == "0":
        return False
    month, day = int(value[10:12]), int(value[12:14])
    if value[6:8] not in ("18", "19", "20") or not 1 <= month <= 12 or not 1 <= day <= 31:
        return False
    total = sum(int(c) * w for c, w in zip(value[:17], CN_WEIGHTS, strict=True))
    return CN_CHECK[total % 11] == value[17].upper()


def ssn_valid(area: str, group: str, serial: str) -> bool:
    """The SSA's never-issued numbers are not SSNs: areas 000, 666, 900-999; group 00; 0000."""
    if len(area) != 3 or len(group) != 2 or len(serial) != 4:
        return False
    return area not in ("000", "666") and area[0] != "9" and group != "00" and serial != "0000"


def iban_valid(compact: str) -> bool:
    """ISO 13616: country letters, two check digits, mod 97 of the rearranged number is 1."""
    if not 15 <= len(compact) <= 34 or not compact.isascii() or not compact.isalnum():
        return False
    if not (compact[:2].isalpha() and compact[:2].isupper() and compact[2:4].isdigit()):
        return False
    moved = compact[4:] + compact[:4]
    number = "".join(str(int(c, 36)) for c in moved.upper())
    return int(number) % 97 == 1


# --- patterns -------------------------------------------------------------------------------

EMAIL_RE = re.compile(
    r"(?<![A-Za-z0-9._%+\-])[A-Za-z0-9](?:[A-Za-z0-9._%+\-]{0,62}[A-Za-z0-9_%+\-])?"
    r"@[A-Za-z0-9](?:[A-Za-z0-9\-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9\-]{0,61}"
    r"[A-Za-z0-9])?)*\.[A-Za-z]{2,24}(?![A-Za-z0-9\-])"
)
# Country letters, check digits, then chunks of letters/digits separated by single spaces.
IBAN_RE = re.compile(r"(?<![A-Za-z0-9])[A-Z]{2}[0-9]{2}(?:[ ]?[A-Z0-9]){11,40}+(?![a-z0-9])")
# A run of digit groups: one separator between groups (space, dash, "-" with spaces, or the
# parentheses of a US area code), an optional leading "+", an optional trailing X (CN ID).
SEP = r"(?:\)[ ]?|[ \u00a0]?[-\u2013][ \u00a0]?|[ \u00a0]|[ ]?\()"
RUN_RE = re.compile(
    rf"(?<![0-9A-Za-z+])(?>(\+[ ]?)?\(?[0-9]+(?:{SEP}[0-9]+)*+\)?)([Xx])?(?![0-9A-Za-z])"
)
GROUP_RE = re.compile(r"[0-9]+")
CURRENCY = "$€£¥￥"

EN_DIGITS = {
    "zero": "0", "oh": "0", "o": "0", "one": "1", "two": "2", "three": "3", "four": "4",
    "five": "5", "six": "6", "seven": "7", "eight": "8", "nine": "9",
}  # fmt: skip
EN_TOKEN = r"(?:zero|oh|one|two|three|four|five|six|seven|eight|nine|o|[0-9]+)"
EN_WORD = r"(?:zero|oh|one|two|three|four|five|six|seven|eight|nine)"
# Starts with a digit WORD: digit groups before it are the digit-run detector's.
EN_RUN_RE = re.compile(
    rf"(?<![A-Za-z0-9]){EN_WORD}(?:[ ,\-]+{EN_TOKEN})+(?![A-Za-z0-9])", re.IGNORECASE
)
EN_TOKEN_RE = re.compile(rf"\b{EN_TOKEN}\b", re.IGNORECASE)
ZH_DIGITS = {
    "零": "0", "〇": "0", "一": "1", "幺": "1", "二": "2", "两": "2", "三": "3", "四": "4",
    "五": "5", "六": "6", "七": "7", "八": "8", "九": "9",
}  # fmt: skip
ZH_RUN_RE = re.compile(r"[零〇一幺二两三四五六七八九](?:[ ]?[零〇一幺二两三四五六七八九]){6,}")

SPELLED_MIN_DIGITS = 7
MAX_GROUPS = 19  # a window longer than the longest entity (19-digit card) cannot match


Hit = tuple[EntityKind, int, int]


@dataclass(frozen=True, slots=True)
class DigitGroup:
    start: int
    end: int
    digits: str


def spelled_kind(digits: str) -> EntityKind | None:
    """What a spoken digit run is: checked card/ID/SSN first, else a phone by its length."""
    if len(digits) < SPELLED_MIN_DIGITS:
        return None
    if len(digits) == 18 and cn_id_valid(digits):
        return "cn_id"
    if 13 <= len(digits) <= 19 and digits[0] != "0" and luhn_valid(digits):
        return "card"
    if len(digits) == 9 and ssn_valid(digits[:3], digits[3:5], digits[5:]):
        return "ssn"
    if len(digits) <= 15:
        return "phone"
    return None
