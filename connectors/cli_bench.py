"""``callsense bench accuracy``: does the fast backend hear what fp32 torch hears, on your calls?

Speed benchmarks run on random weights; only users with the real model and their own
labelled calls can check accuracy. Both recognizers hear exactly the same VAD segments
(decoding, VAD and segmentation run once per file), so per-segment tag agreement and the
text CER between them measure the backend alone. Against the user's references each
backend gets a CER (micro-averaged: all edits over all reference characters) and a tag
accuracy per file (the tag that covers most of the file's utterance time).

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
from typing import Annotated, Any

import typer
from pydantic import BaseModel, ConfigDict, ValidationError
from rich.markup import escape
from rich.table import Table

from callsense.connectors.cli_transcribe import ConfigOpt, ModelOpt, VadModelOpt
from callsense.connectors.console import (
    err_console,
    fail,
    find_audio,
    out_console,
    progress,
    setup_logging,
)
from callsense.core.errors import CallsenseError, ConfigError, InputError

__all__ = [
    "Reference",
    "Score",
    "cer_counts",
    "edit_distance",
    "load_references",
    "normalize_text",
    "register",
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


def _file_text(utterances: list[Any]) -> str:
    return " ".join(
        u.text for u in sorted(utterances, key=lambda u: (u.start, u.channel)) if u.text
    )


def _file_tag(utterances: list[Any], kind: str) -> str | None:
    """The tag that covers the most utterance time in the file (None if none has one)."""
    weight: Counter[str] = Counter()
    for u in utterances:
        tag = getattr(u, kind)
        if tag is not None:
            weight[tag] += max(u.end - u.start, 1e-6)
    return weight.most_common(1)[0][0] if weight else None


def _score_file(score: Score, ref: Reference, utterances: list[Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"text": _file_text(utterances)}
    if ref.text is not None:
        edits, chars = cer_counts(ref.text, out["text"])
        score.edits += edits
        score.ref_chars += chars
        out["cer"] = edits / chars if chars else None
    for kind in TAGS:
        want = getattr(ref, kind)
        got = _file_tag(utterances, kind)
        out[kind] = got
        if want is not None:
            score.tag_total[kind] += 1
            score.tag_right[kind] += got in want
    return out


def _match(path: Path, by_name: dict[str, Reference], base: Path | None) -> Reference | None:
    if base is not None:
        try:
            rel = path.resolve().relative_to(base.resolve()).as_posix()
        except ValueError:
            rel = None
        if rel is not None and rel in by_name:
            return by_name[rel]
    return by_name.get(path.name)


# --------------------------------------------------------------------------- command


def accuracy(
    paths: Annotated[
        list[Path],
        typer.Argument(
            help="Labelled calls: audio files, directories, or a reference TSV/JSONL "
            "(then every file it lists, relative to it)."
        ),
    ],
    fast_config: Annotated[
        Path,
        typer.Option(
            "--fast-config",
            help="YAML config whose recognizer section is the fast backend "
            "(e.g. backend: onnx, quantize: int8, model: EXPORTED_DIR).",
        ),
    ],
    reference: Annotated[
        Path | None,
        typer.Option(
            "--reference", "-r", help="References (TSV or JSONL: file, text, lang, emotion, event)."
        ),
    ] = None,
    model: ModelOpt = None,
    vad_model: VadModelOpt = None,
    config: ConfigOpt = None,
    json_out: Annotated[
        Path | None, typer.Option("--json", help="Also write the full report as JSON here.")
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Tag agreement and CER on your labelled calls: fp32 torch vs the fast backend.

    The baseline is the --config/--model recognizer forced to backend torch, quantize none;
    the fast one is --fast-config's recognizer section. VAD and segmentation come from
    --config and run once, so both backends hear the same segments. Transcript text is
    written only to the --json report, never to logs.
    """
    setup_logging(verbose)
    from callsense.connectors.appconfig import load_app_config
    from callsense.pipeline.config import load_config

    try:
        cfg = load_app_config(config, model=model, vad_model=vad_model)
        fast_cfg = load_config(fast_config, environ={})
        refs, files, base = _inputs(paths, reference)
    except CallsenseError as exc:
        fail(exc)
    base_rec = cfg.recognizer.model_copy(update={"backend": "torch", "quantize": "none"})
    cfg = cfg.model_copy(update={"recognizer": base_rec})
    if not files:
        fail("no audio files found in the given paths")
    report = _evaluate(cfg, fast_cfg.recognizer, files, refs, base)
    out_console.print(_table(report))
    if json_out is not None:
        json_out.write_text(json.dumps(report, ensure_ascii=False, indent=2) + "\n")
        err_console.print(f"report in {json_out}")


def _inputs(
    paths: list[Path], reference: Path | None
) -> tuple[dict[str, Reference], list[Path], Path | None]:
    refs: dict[str, Reference] = {}
    base: Path | None = None
    audio_args: list[Path] = []
    listed: list[Path] = []
    ref_files = [p for p in paths if p.is_file() and p.suffix.lower() in REFERENCE_SUFFIXES]
    if reference is not None:
        ref_files.insert(0, reference)
    for ref_file in ref_files:
        for row in load_references(ref_file):
            refs.setdefault(row.file, row)
            if ref_file in paths:
                listed.append(ref_file.parent / row.file)
        base = base or ref_file.parent
    for p in paths:
        if p not in ref_files:
            audio_args.append(p)
    missing = [p for p in listed if not p.is_file()]
    if missing:
        raise InputError(f"{missing[0]}: listed in the references but not found")
    files = list(dict.fromkeys([*listed, *find_audio(audio_args)]))
    return refs, files, base


def _evaluate(
    cfg: Any, fast: Any, files: list[Path], refs: dict[str, Reference], base: Path | None
) -> dict[str, Any]:
    from callsense.pipeline.audio import decode, speaker_for
    from callsense.pipeline.recognizer import build_recognizer
    from callsense.pipeline.transcribe import Transcriber, _clip, utterance_from
    from callsense.pipeline.vad import build_vad

    try:
        with err_console.status("loading models…"):
            recognizers = {
                "fp32": build_recognizer(cfg.recognizer),
                "fast": build_recognizer(fast),
            }
            transcriber = Transcriber(
                cfg=cfg, vad=build_vad(cfg.vad), recognizer=recognizers["fp32"]
            )
    except CallsenseError as exc:
        fail(exc)
    scores = {name: Score() for name in recognizers}
    agree = Agreement()
    per_file: list[dict[str, Any]] = []
    failed: list[dict[str, str]] = []
    with progress() as bar:
        task = bar.add_task("scoring", total=len(files))
        for path in files:
            bar.update(task, description=f"scoring {escape(path.name)}")
            try:
                audio = decode(path, cfg.audio)
                segments = transcriber.segments(audio)
                clips = [_clip(audio.channels[s.channel], s, audio.sample_rate) for s in segments]
                n = len(audio.channels)
                heard: dict[str, list[Any]] = {}
                for name, rec in recognizers.items():
                    results = rec.recognize(clips, language=cfg.recognizer.language)
                    heard[name] = [
                        utterance_from(
                            s,
                            r,
                            call_id=path.stem,
                            speaker=speaker_for(s.channel, n, cfg.audio),
                            cfg=cfg,
                        )
                        for s, r in zip(segments, results, strict=True)
                    ]
            except CallsenseError as exc:
                failed.append({"file": str(path), "error": str(exc)})
                bar.advance(task)
                continue
            for a, b in zip(heard["fp32"], heard["fast"], strict=True):
                agree.segments += 1
                for kind in TAGS:
                    agree.same_tag[kind] += getattr(a, kind) == getattr(b, kind)
                agree.same_text += a.text == b.text
                edits, chars = cer_counts(a.text, b.text)
                agree.edits += edits
                agree.fp32_chars += chars
            ref = _match(path, refs, base)
            row: dict[str, Any] = {"file": str(path), "segments": len(segments)}
            if ref is not None:
                row["reference"] = ref.model_dump(mode="json")
                for name in recognizers:
                    row[name] = _score_file(scores[name], ref, heard[name])
            else:
                row["reference"] = None
                for name in recognizers:
                    row[name] = {"text": _file_text(heard[name])} | {
                        k: _file_tag(heard[name], k) for k in TAGS
                    }
            per_file.append(row)
            bar.advance(task)
    return {
        "backends": {
            name: {"model": rec.model_id, "backend": type(rec).__name__}
            for name, rec in recognizers.items()
        },
        "files": len(per_file),
        "failed": failed,
        "scores": {
            name: {
                "cer": s.cer,
                "ref_chars": s.ref_chars,
                "edits": s.edits,
                **{f"{k}_accuracy": s.accuracy(k) for k in TAGS},
                **{f"{k}_labelled": s.tag_total[k] for k in TAGS},
            }
            for name, s in scores.items()
        },
        "agreement": {
            "segments": agree.segments,
            **{k: agree.rate(k) for k in TAGS},
            "text_exact": agree.same_text / agree.segments if agree.segments else None,
            "cer_vs_fp32": agree.edits / agree.fp32_chars if agree.fp32_chars else None,
        },
        "per_file": per_file,
    }


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _table(report: dict[str, Any]) -> Table:
    table = Table(title="callsense bench accuracy", expand=False)
    for col in ("", "CER", "lang acc", "emotion acc", "event acc", "labelled (chars/tags)"):
        table.add_column(col)
    for name, s in report["scores"].items():
        labelled = f"{s['ref_chars']} / " + "/".join(str(s[f"{k}_labelled"]) for k in TAGS)
        table.add_row(
            name,
            _fmt(s["cer"]),
            *(_fmt(s[f"{k}_accuracy"]) for k in TAGS),
            labelled,
        )
    a = report["agreement"]
    table.add_row(
        f"fast vs fp32 ({a['segments']} segments)",
        _fmt(a["cer_vs_fp32"]),
        *(_fmt(a[k]) for k in TAGS),
        f"text identical: {_fmt(a['text_exact'])}",
    )
    models = "; ".join(f"{n}: {escape(b['model'])}" for n, b in report["backends"].items())
    table.caption = (
        f"{models}\n{report['files']} files scored, {len(report['failed'])} failed; CER = edits / "
        "reference characters (case, punctuation and spaces ignored); tag acc = the file's "
        "dominant tag is among the labelled ones"
    )
    return table


def register(app: typer.Typer) -> None:
    """Add the ``bench`` command group to the ``callsense`` app."""
    bench_app = typer.Typer(
        help="Measure the recognizer backends on your data.", no_args_is_help=True
    )
    bench_app.command("accuracy")(accuracy)
    app.add_typer(bench_app, name="bench")
