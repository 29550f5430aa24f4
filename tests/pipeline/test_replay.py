"""Replay recognizer: JSONL transcripts read back as calls, bad lines reported, not fatal."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest

from callsense.core.errors import InputError
from callsense.core.wire import MAX_RECORD_BYTES, MAX_TEXT_CHARS, MAX_TRANSCRIPT_CHARS
from callsense.pipeline.model import CallTranscript, TagConfidence, Utterance
from callsense.pipeline.records import RECORD_KEYS
from callsense.pipeline.replay import (
    ReplayProblem,
    jsonl_files,
    read_transcripts,
    write_error,
    write_jsonl,
)


def rec(call_id: str, start: float, end: float, raw: str, **kw: Any) -> str:
    data: dict[str, Any] = {
        "call_id": call_id,
        "channel": 0,
        "speaker": "customer",
        "start": start,
        "end": end,
        "raw": raw,
    }
    data.update(kw)
    return json.dumps(data, ensure_ascii=False)


ANGRY = "<|en|><|ANGRY|><|Speech|><|withitn|>Third time!"
CALM = "<|en|><|NEUTRAL|><|Speech|><|withitn|>Okay."
LAUGH = "<|nospeech|><|EMO_UNKNOWN|><|Laughter|><|woitn|>"


def split(
    items: list[CallTranscript | ReplayProblem],
) -> tuple[list[CallTranscript], list[ReplayProblem]]:
    calls = [i for i in items if isinstance(i, CallTranscript)]
    problems = [i for i in items if isinstance(i, ReplayProblem)]
    assert len(calls) + len(problems) == len(items)
    return calls, problems


def test_calls_are_grouped_and_sorted_even_when_interleaved(tmp_path: Path) -> None:
    f = tmp_path / "batch.jsonl"
    f.write_text(
        "\n".join(
            [
                rec("b", 5.0, 6.0, CALM),
                rec("a", 3.0, 4.0, ANGRY),
                "",
                rec("a", 0.0, 1.5, CALM, speaker="agent", channel=1),
                "   ",
                rec("b", 1.0, 2.0, LAUGH, source="sound"),
                rec("a", 2.0, 2.5, LAUGH),
            ]
        )
        + "\n",
        encoding="utf-8",
    )
    calls, problems = split(list(read_transcripts([f])))
    assert problems == []
    assert [c.call_id for c in calls] == ["b", "a"]  # order of first appearance
    a = calls[1]
    assert [u.start for u in a.utterances] == [0.0, 2.0, 3.0]
    assert [(u.speaker, u.emotion, u.event, u.text) for u in a.utterances] == [
        ("agent", "NEUTRAL", "Speech", "Okay."),
        ("customer", "EMO_UNKNOWN", "Laughter", ""),
        ("customer", "ANGRY", "Speech", "Third time!"),
    ]
    assert a.source == str(f)
    assert [u.source for u in calls[0].utterances] == ["sound", "speech"]


def test_bad_lines_are_problems_and_the_rest_is_read(tmp_path: Path) -> None:
    f = tmp_path / "mixed.jsonl"
    lines = [
        rec("a", 0.0, 1.0, CALM),  # 1 ok
        "{not json",  # 2
        json.dumps({"call_id": "a", "channel": 0, "start": 1, "end": 2, "raw": CALM}),  # 3 speaker
        rec("a", 1.0, "2", CALM),  # 4 wrong type
        rec("a", 3.0, 2.0, CALM),  # 5 end < start
        "[1, 2]",  # 6 not an object
        rec("b", 0.0, 1.0, ANGRY),  # 7 ok
        rec("a", 4.0, 5.0, ANGRY),  # 8 ok
    ]
    f.write_text("\n".join(lines), encoding="utf-8")  # no final newline
    calls, problems = split(list(read_transcripts([f])))
    assert [(c.call_id, len(c.utterances)) for c in calls] == [("a", 2), ("b", 1)]
    assert [p.line for p in problems] == [2, 3, 4, 5, 6]
    assert all(p.file == str(f) for p in problems)
    by_line = {p.line: p.message for p in problems}
    assert by_line[2].startswith("invalid JSON")
    assert by_line[3] == "speaker: Field required"
    assert by_line[4].startswith("end: ")
    assert "before start" in by_line[5]
    assert "expected a JSON object, got list" in by_line[6]
    assert str(problems[0]) == f"{f}:2: {by_line[2]}"


def test_non_utf8_line_and_bom(tmp_path: Path) -> None:
    f = tmp_path / "bytes.jsonl"
    f.write_bytes(
        "\ufeff".encode()
        + rec("a", 0, 1, CALM).encode()
        + b"\n\xff\xfe garbage\n"
        + rec("a", 1, 2, "<|ko|><|HAPPY|><|Speech|><|withitn|>네").encode()
        + b"\n"
    )
    calls, problems = split(list(read_transcripts([f])))
    assert [u.lang for u in calls[0].utterances] == ["en", "ko"]
    assert [(p.line, p.message) for p in problems] == [(2, "not UTF-8 (byte 0)")]


def test_directories_are_read_recursively_in_sorted_order(tmp_path: Path) -> None:
    (tmp_path / "z").mkdir()
    (tmp_path / "a" / "deep").mkdir(parents=True)
    (tmp_path / "z" / "1.jsonl").write_text(rec("z1", 0, 1, CALM) + "\n")
    (tmp_path / "a" / "deep" / "2.jsonl").write_text(rec("a2", 0, 1, CALM) + "\n")
    (tmp_path / "a" / "1.jsonl").write_text(rec("a1", 0, 1, CALM) + "\n")
    (tmp_path / "a" / "notes.txt").write_text("not a transcript")
    (tmp_path / "a" / "x.json").write_text("{}")
    single = tmp_path / "single.jsonl"
    single.write_text(rec("s", 0, 1, ANGRY) + "\n")
    assert jsonl_files([tmp_path / "a"]) == [tmp_path / "a/1.jsonl", tmp_path / "a/deep/2.jsonl"]
    assert jsonl_files(str(single)) == jsonl_files(single) == [single]
    calls, problems = split(list(read_transcripts([single, str(tmp_path / "a"), tmp_path / "z"])))
    assert problems == []
    assert [c.call_id for c in calls] == ["s", "a1", "a2", "z1"]


def test_missing_path_is_an_input_error_naming_it(tmp_path: Path) -> None:
    good = tmp_path / "good.jsonl"
    good.write_text(rec("a", 0, 1, CALM) + "\n")
    missing = tmp_path / "nope.jsonl"
    with pytest.raises(InputError, match=r"nope\.jsonl: no such file or directory"):
        list(read_transcripts([good, missing]))


def test_a_call_id_in_two_files_is_two_calls_and_a_note(tmp_path: Path) -> None:
    (tmp_path / "1.jsonl").write_text(rec("a", 0, 1, CALM) + "\n")
    (tmp_path / "2.jsonl").write_text(rec("a", 5, 6, ANGRY) + "\n")
    items = list(read_transcripts([tmp_path]))
    calls, problems = split(items)
    assert [(c.call_id, c.utterances[0].emotion) for c in calls] == [
        ("a", "NEUTRAL"),
        ("a", "ANGRY"),
    ]
    [note] = problems
    assert note.file == str(tmp_path / "2.jsonl")
    assert note.line is None
    assert "already read from" in note.message and "separate call" in note.message


def test_files_are_streamed_one_at_a_time(tmp_path: Path) -> None:
    first = tmp_path / "1.jsonl"
    second = tmp_path / "2.jsonl"
    first.write_text(rec("a", 0, 1, CALM) + "\n")
    second.write_text(rec("b", 0, 1, CALM) + "\n")
    it = read_transcripts([first, second])
    assert isinstance(got := next(it), CallTranscript) and got.call_id == "a"
    # the second file is opened only now: what it holds at this point is what is read
    second.write_text(rec("c", 0, 1, ANGRY) + "\n")
    rest = list(it)
    assert [c.call_id for c in rest if isinstance(c, CallTranscript)] == ["c"]


def test_error_records_and_unknown_keys_are_reported(tmp_path: Path) -> None:
    out = io.StringIO()
    write_error("broken", "calls/broken.wav", InputError("calls/broken.wav: not audio"), out)
    f = tmp_path / "batch.jsonl"
    f.write_text(
        rec("a", 0, 1, CALM, key="rand_key_1", words=["Okay", "."])
        + "\n"
        + out.getvalue()
        + json.dumps({"error": "?"})
        + "\n"
    )
    calls, problems = split(list(read_transcripts([f])))
    assert [c.call_id for c in calls] == ["a"]
    messages = [(p.line, p.message) for p in problems]
    assert messages == [
        (
            2,
            "call 'broken' (calls/broken.wav) failed earlier: "
            "InputError: calls/broken.wav: not audio",
        ),
        (3, "malformed error record"),
        (None, "ignored unknown keys: key, words"),
    ]


def test_write_then_read_gives_the_same_transcript(tmp_path: Path) -> None:
    utterances = (
        Utterance(
            "call-7",
            0,
            "agent",
            0.0,
            1.25,
            "speech",
            "en",
            "NEUTRAL",
            "Speech",
            "Hello, thanks for calling.",
            "<|en|><|NEUTRAL|><|Speech|><|withitn|>Hello, thanks for calling.",
            TagConfidence(0.99, 0.8, 0.97),
        ),
        Utterance(
            "call-7",
            1,
            "customer",
            1.5,
            2.0,
            "sound",
            "nospeech",
            "EMO_UNKNOWN",
            "Cry",
            "",
            "<|nospeech|><|EMO_UNKNOWN|><|Cry|><|woitn|><|SPECIAL_TOKEN_3|>",
            TagConfidence(0.5, None, 0.75),
            ("SPECIAL_TOKEN_3",),
        ),
        Utterance(
            "call-7",
            1,
            "customer",
            2.25,
            4.0,
            "speech",
            "zh",
            "EMO_UNKNOWN",  # abstained although raw says ANGRY
            "Speech",
            "我要投诉",
            "<|zh|><|ANGRY|><|Speech|><|withitn|>我要投诉",
            TagConfidence(0.97, 0.31, 0.99),
        ),
    )
    transcript = CallTranscript("call-7", utterances)
    f = tmp_path / "out.jsonl"
    with f.open("w", encoding="utf-8") as fh:
        assert write_jsonl(transcript, fh) == 3
    text = f.read_text(encoding="utf-8")
    assert "我要投诉" in text  # readable, not \\u-escaped
    for line in text.splitlines():
        assert tuple(json.loads(line)) == RECORD_KEYS
    [back] = list(read_transcripts([f]))
    assert isinstance(back, CallTranscript)
    assert back.utterances == utterances


def test_oversized_lines_texts_and_calls_are_problems_and_the_rest_is_read(
    tmp_path: Path,
) -> None:
    """The limits of ``core.wire``: each names file, line and field, and bounds what is held."""
    huge_line = json.dumps({"call_id": "c", "junk": "x" * (MAX_RECORD_BYTES + 10)})
    long_text = "<|en|><|NEUTRAL|><|Speech|><|withitn|>" + "word " * MAX_TEXT_CHARS
    per_record = MAX_TEXT_CHARS - 10
    big_call = [
        rec("big", i, i + 1.0, "", text="a" * per_record)
        for i in range(MAX_TRANSCRIPT_CHARS // per_record + 1)
    ]
    path = tmp_path / "calls.jsonl"
    path.write_text(
        "\n".join([huge_line, rec("c", 0, 1, long_text), rec("c", 1, 2, CALM), *big_call]) + "\n"
    )
    out = list(read_transcripts(path))
    problems = [str(p) for p in out if isinstance(p, ReplayProblem)]
    assert problems[0] == f"{path}:1: line longer than {MAX_RECORD_BYTES} bytes (MAX_RECORD_BYTES)"
    assert problems[1].startswith(f"{path}:2: raw: {len(long_text)} characters, more than one")
    assert "(MAX_RAW_CHARS = " in problems[1]
    assert problems[2] == (
        f"{path}: call 'big': utterances: the transcript holds more than "
        f"{MAX_TRANSCRIPT_CHARS} characters of text (MAX_TRANSCRIPT_CHARS); split the call or "
        "send less of it"
    )
    (call,) = [c for c in out if isinstance(c, CallTranscript)]
    assert call.call_id == "c" and len(call.utterances) == 1
