"""Scoring a recognizer against references: the reference file formats, the character error
rate (micro-averaged: all edits over all reference characters) and per-file tag accuracy
(the tag that covers most of the file's utterance time), for ``callsense bench accuracy``.

References are a TSV with a header row holding ``file`` and any of ``text`` (or
``transcript``), ``lang``, ``emotion``, ``event`` (other columns are ignored, so
../shared/testdata/MANIFEST.tsv works as it is); a TSV without a header in the order
``file text lang emotion event``; or JSONL with those keys. Empty cells and texts in
parentheses (``(not transcribed)``) are "not labelled". A tag cell may list several tags
(``Speech + Laughter``); a note in parentheses after them is ignored.
"""

from __future__ import annotations

import csv
import json
import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from callsense.core.errors import ConfigError, InputError

__all__ = [
    "REFERENCE_SUFFIXES",
    "TAGS",
    "Agreement",
    "Reference",
    "Score",
    "cer_counts",
    "edit_distance",
    "load_references",
    "normalize_text",
]

TAGS = ("lang", "emotion", "event")
REFERENCE_SUFFIXES = (".tsv", ".jsonl")
_COLUMNS = ("file", "text", "lang", "emotion", "event")


# --------------------------------------------------------------------------- references


class Reference(BaseModel):
    """What a person says is in one file; None = not labelled."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    file: str
    text: str | None = None
    lang: frozenset[str] | None = None
    emotion: frozenset[str] | None = None
    event: frozenset[str] | None = None


def _vocabulary() -> dict[str, frozenset[str]]:
    from callsense.core.richtext import EMOTIONS, EVENTS, LANGS

    return {"lang": frozenset(LANGS), "emotion": frozenset(EMOTIONS), "event": frozenset(EVENTS)}


def _tag_cell(value: Any, kind: str, where: str) -> frozenset[str] | None:
    if value is None:
        return None
    if isinstance(value, list):
        tokens = [str(v).strip() for v in value]
    else:
        head = str(value).split("(", 1)[0]
        tokens = [t.strip() for t in head.replace("+", ",").replace("|", ",").split(",")]
    tokens = [t for t in tokens if t]
    if not tokens:
        return None
    known = _vocabulary()[kind]
    for token in tokens:
        if token not in known:
            raise InputError(
                f"{where}: {kind}: {token!r} is not a SenseVoice {kind} tag "
                f"(one of {', '.join(sorted(known))})"
            )
    return frozenset(tokens)


def _text_cell(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    if not text or (text.startswith("(") and text.endswith(")")):
        return None
    return text


def _row(raw: dict[str, Any], where: str) -> Reference:
    if "transcript" in raw and "text" not in raw:
        raw = {("text" if k == "transcript" else k): v for k, v in raw.items()}
    if not str(raw.get("file") or "").strip():
        raise InputError(f"{where}: file: missing")
    return Reference(
        file=str(raw["file"]).strip(),
        text=_text_cell(raw.get("text")),
        **{kind: _tag_cell(raw.get(kind), kind, where) for kind in TAGS},
    )


def load_references(path: Path) -> list[Reference]:
    """Read a reference TSV or JSONL; errors name the file, the line and the field."""
    try:
        content = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    rows: list[Reference] = []
    if path.suffix.lower() == ".jsonl":
        allowed = {*_COLUMNS, "transcript"}
        for n, line in enumerate(content.splitlines(), 1):
            if not line.strip():
                continue
            try:
                raw = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ConfigError(f"not JSON: {exc.msg}", file=str(path), line=n) from exc
            if not isinstance(raw, dict):
                raise ConfigError("expected a JSON object", file=str(path), line=n)
            unknown = sorted(set(raw) - allowed)
            if unknown:
                raise ConfigError(
                    f"unknown key(s) {', '.join(unknown)}; allowed: {', '.join(_COLUMNS)}",
                    file=str(path),
                    line=n,
                    field=unknown[0],
                )
            rows.append(_row(raw, f"{path}:{n}"))
    else:
        lines = content.splitlines()
        reader = csv.reader(lines, delimiter="\t", quoting=csv.QUOTE_NONE)
        table = list(reader)
        if not table:
            return []
        header = [h.strip() for h in table[0]]
        if "file" in header:
            body, start = table[1:], 2
        else:
            header, body, start = list(_COLUMNS), table, 1
        for n, cells in enumerate(body, start):
            if not any(c.strip() for c in cells):
                continue
            if len(cells) > len(header):
                raise ConfigError(
                    f"{len(cells)} columns, the header has {len(header)}", file=str(path), line=n
                )
            raw = {h: (c if c.strip() else None) for h, c in zip(header, cells, strict=False)}
            raw = {k: v for k, v in raw.items() if k in (*_COLUMNS, "transcript")}
            try:
                rows.append(_row(raw, f"{path}:{n}"))
            except ValidationError as exc:
                raise ConfigError(str(exc), file=str(path), line=n) from exc
    seen: set[str] = set()
    for ref in rows:
        if ref.file in seen:
            raise InputError(f"{path}: file {ref.file!r} is listed twice")
        seen.add(ref.file)
    return rows


# --------------------------------------------------------------------------- CER


def normalize_text(text: str) -> str:
    """What CER compares: NFKC, case-folded, without punctuation, symbols or spaces.

    Spaces are dropped so Chinese and Japanese (written without them) and English are
    scored the same way, per character.
    """
    text = unicodedata.normalize("NFKC", text).casefold()
    return "".join(c for c in text if unicodedata.category(c)[0] not in "PSZC")


def edit_distance(ref: str, hyp: str) -> int:
    """Levenshtein distance (substitutions, insertions, deletions all cost 1)."""
    if len(ref) < len(hyp):
        ref, hyp = hyp, ref
    previous = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        current = [i]
        for j, h in enumerate(hyp, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (r != h)))
        previous = current
    return previous[-1]


def cer_counts(ref: str, hyp: str) -> tuple[int, int]:
    """(edits, reference characters) after ``normalize_text``; sum them for a corpus CER."""
    r, h = normalize_text(ref), normalize_text(hyp)
    return edit_distance(r, h), len(r)


# --------------------------------------------------------------------------- scoring


@dataclass
class Score:
    """Running totals for one backend (``vs_fp32`` only for the fast one)."""

    edits: int = 0
    ref_chars: int = 0
    tag_right: Counter[str] = field(default_factory=Counter)
    tag_total: Counter[str] = field(default_factory=Counter)

    @property
    def cer(self) -> float | None:
        return self.edits / self.ref_chars if self.ref_chars else None

    def accuracy(self, kind: str) -> float | None:
        total = self.tag_total[kind]
        return self.tag_right[kind] / total if total else None


@dataclass
class Agreement:
    """The fast backend against fp32, per segment (same clips)."""

    segments: int = 0
    same_tag: Counter[str] = field(default_factory=Counter)
    same_text: int = 0
    edits: int = 0
    fp32_chars: int = 0

    def rate(self, kind: str) -> float | None:
        return self.same_tag[kind] / self.segments if self.segments else None


def file_text(utterances: list[Any]) -> str:
    return " ".join(
        u.text for u in sorted(utterances, key=lambda u: (u.start, u.channel)) if u.text
    )


def file_tag(utterances: list[Any], kind: str) -> str | None:
    """The tag that covers the most utterance time in the file (None if none has one)."""
    weight: Counter[str] = Counter()
    for u in utterances:
        tag = getattr(u, kind)
        if tag is not None:
            weight[tag] += max(u.end - u.start, 1e-6)
    return weight.most_common(1)[0][0] if weight else None


def score_file(score: Score, ref: Reference, utterances: list[Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"text": file_text(utterances)}
    if ref.text is not None:
        edits, chars = cer_counts(ref.text, out["text"])
        score.edits += edits
        score.ref_chars += chars
        out["cer"] = edits / chars if chars else None
    for kind in TAGS:
        want = getattr(ref, kind)
        got = file_tag(utterances, kind)
        out[kind] = got
        if want is not None:
            score.tag_total[kind] += 1
            score.tag_right[kind] += got in want
    return out


def match_reference(
    path: Path, by_name: dict[str, Reference], base: Path | None
) -> Reference | None:
    if base is not None:
        try:
            rel = path.resolve().relative_to(base.resolve()).as_posix()
        except ValueError:
            rel = None
        if rel is not None and rel in by_name:
            return by_name[rel]
    return by_name.get(path.name)
