"""The replay recognizer: transcripts that already exist (JSONL) read back as calls.

Policy tests, backtests and users who already ran SenseVoice feed ``read_transcripts`` the
same JSONL that ``callsense transcribe`` writes (``records.py``: ``raw`` plus timings is
enough). Reading is forgiving per line and strict per field: a malformed line becomes a
``ReplayProblem`` naming file, line and field, and every other line and call is still read.

Decisions, so nobody has to read the code:

* Files are read one at a time (memory holds one file's utterances, never the whole batch);
  a directory means every ``*.jsonl`` under it, recursively, in sorted path order.
* Within a file, lines of one ``call_id`` need not be contiguous; a call's utterances are
  sorted by end time (then channel, then start): the order a live call hears them complete
  and a recording's stages get them, so a replay decides as the call did (and the ``seq``
  its evidence cites is the same). Calls come out in order of first appearance, after their
  file's problems.
* A ``call_id`` seen again in a LATER file is a separate call (merging would hold every file
  in memory until the end); a ``ReplayProblem`` says so, and the second call is still yielded.
* Batch error lines (``records.ErrorRecord``: a file that failed to transcribe) become a
  ``ReplayProblem`` too: that call has no utterances to replay.
* A line longer than ``MAX_RECORD_BYTES`` is a ``ReplayProblem`` and is not held in memory
  (it is skipped in pieces); a call whose text passes ``MAX_TRANSCRIPT_CHARS`` is a
  ``ReplayProblem`` instead of a call (``core.wire`` says why these limits exist).
* Empty and whitespace-only lines are skipped. Keys the record does not know are ignored and
  named once per file in a ``ReplayProblem`` (the line is still read).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from callsense.core.errors import InputError
from callsense.core.wire import MAX_RECORD_BYTES
from callsense.pipeline.model import CallTranscript, Utterance
from callsense.pipeline.records import (
    RECORD_KEYS,
    ErrorRecord,
    check_transcript_size,
    error_record,
    record_from_utterance,
    utterance_from_record,
)

__all__ = [
    "ReplayProblem",
    "jsonl_files",
    "read_transcripts",
    "write_error",
    "write_jsonl",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ReplayProblem:
    """A line that could not be read (or a note on the input); the rest was still read."""

    file: str
    line: int | None
    message: str

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        return f"{where}: {self.message}"


def jsonl_files(paths: Iterable[Path | str] | Path | str) -> list[Path]:
    """Expand files and directories (``*.jsonl`` recursively, sorted); a missing path is an
    ``InputError`` raised before anything is read."""
    if isinstance(paths, str | Path):  # one path, not an iterable of characters
        paths = [paths]
    files: list[Path] = []
    for item in paths:
        path = Path(item)
        if path.is_dir():
            files.extend(sorted(p for p in path.rglob("*.jsonl") if p.is_file()))
        elif path.is_file():
            files.append(path)
        else:
            raise InputError(f"{path}: no such file or directory")
    return files


def read_transcripts(
    paths: Iterable[Path | str] | Path | str,
) -> Iterator[CallTranscript | ReplayProblem]:
    """Yield each call of the given JSONL files/directories, and a problem per bad line."""
    seen: dict[str, str] = {}  # call_id -> first file, to flag ids repeated across files
    for file in jsonl_files(paths):
        calls, problems = _read_file(file)
        yield from problems
        for call_id, utterances in calls.items():
            if call_id in seen:
                yield ReplayProblem(
                    str(file),
                    None,
                    f"call_id {call_id!r} already read from {seen[call_id]}; "
                    "read here as a separate call",
                )
            else:
                seen[call_id] = str(file)
            try:
                check_transcript_size(utterances, file=f"{file}: call {call_id!r}")
            except InputError as exc:
                yield ReplayProblem(str(file), None, str(exc).removeprefix(f"{file}: "))
                continue
            utterances.sort(key=lambda u: (u.end, u.channel, u.start))
            yield CallTranscript(call_id=call_id, utterances=tuple(utterances), source=str(file))


def _read_file(file: Path) -> tuple[dict[str, list[Utterance]], list[ReplayProblem]]:
    calls: dict[str, list[Utterance]] = {}
    problems: list[ReplayProblem] = []
    ignored: set[str] = set()
    name = str(file)
    try:
        fh = file.open("rb")
    except OSError as exc:
        raise InputError(f"{file}: cannot read: {exc.strerror or exc}") from None
    with fh:
        for number, blob in enumerate(_lines(fh), start=1):
            if blob is None:
                too_long = f"line longer than {MAX_RECORD_BYTES} bytes (MAX_RECORD_BYTES)"
                problems.append(ReplayProblem(name, number, too_long))
                continue
            try:
                line = blob.decode("utf-8")
            except UnicodeDecodeError as exc:
                problems.append(ReplayProblem(name, number, f"not UTF-8 (byte {exc.start})"))
                continue
            if number == 1:
                line = line.removeprefix("\ufeff")
            if not line.strip():
                continue
            try:
                data: Any = json.loads(line)
            except json.JSONDecodeError as exc:
                problems.append(ReplayProblem(name, number, f"invalid JSON: {exc.msg}"))
                continue
            if not isinstance(data, dict):
                kind = type(data).__name__
                problems.append(ReplayProblem(name, number, f"expected a JSON object, got {kind}"))
                continue
            if "error" in data and "start" not in data:
                problems.append(_error_line(name, number, data))
                continue
            try:
                utterance = utterance_from_record(data, file=name, line=number)
            except InputError as exc:
                message = str(exc).removeprefix(f"{name}:{number}: ")
                problems.append(ReplayProblem(name, number, message))
                continue
            ignored.update(k for k in data if k not in RECORD_KEYS)
            calls.setdefault(utterance.call_id, []).append(utterance)
    if ignored:
        problems.append(
            ReplayProblem(name, None, f"ignored unknown keys: {', '.join(sorted(ignored))}")
        )
    logger.debug("read %d calls from %s", len(calls), name)
    return calls, problems


def _lines(fh: IO[bytes]) -> Iterator[bytes | None]:
    """The file's lines; None for one longer than ``MAX_RECORD_BYTES``, which is read past
    in bounded pieces instead of being held whole."""
    while True:
        blob = fh.readline(MAX_RECORD_BYTES + 1)
        if not blob:
            return
        if len(blob) > MAX_RECORD_BYTES and not blob.endswith(b"\n"):
            while (rest := fh.readline(MAX_RECORD_BYTES)) and not rest.endswith(b"\n"):
                pass
            yield None
            continue
        yield blob


def _error_line(file: str, line: int, data: dict[str, Any]) -> ReplayProblem:
    try:
        rec = ErrorRecord.model_validate(data)
    except ValueError:
        return ReplayProblem(file, line, "malformed error record")
    return ReplayProblem(
        file,
        line,
        f"call {rec.call_id!r} ({rec.file}) failed earlier: {rec.error.type}: {rec.error.message}",
    )


def _dump(record: dict[str, Any], fh: IO[str]) -> None:
    fh.write(json.dumps(record, ensure_ascii=False, allow_nan=False))
    fh.write("\n")


def write_jsonl(transcript: CallTranscript, fh: IO[str]) -> int:
    """Write one record per utterance (``records.RECORD_KEYS`` order); returns the count."""
    for utterance in transcript.utterances:
        _dump(record_from_utterance(utterance), fh)
    return len(transcript.utterances)


def write_error(call_id: str, file: str, exc: BaseException, fh: IO[str]) -> None:
    """Write the error line for a file that failed, so the batch output says what is missing."""
    _dump(error_record(call_id, file, exc), fh)
