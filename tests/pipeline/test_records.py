"""The JSONL edge: record shape, filling from raw, and errors that name file, line and field."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from callsense.core.errors import InputError
from callsense.core.richtext import EMOTIONS, EVENTS, LANGS, format_group
from callsense.pipeline.model import SPEAKERS, TagConfidence, Utterance
from callsense.pipeline.records import (
    RECORD_KEYS,
    ErrorRecord,
    UtteranceRecord,
    error_record,
    record_from_utterance,
    utterance_from_record,
)

ISSUE_KEYS = [
    "call_id",
    "channel",
    "speaker",
    "start",
    "end",
    "source",
    "lang",
    "emotion",
    "event",
    "text",
    "raw",
    "confidence",
]


def utt(**kw: Any) -> Utterance:
    base: dict[str, Any] = dict(
        call_id="call-1",
        channel=1,
        speaker="customer",
        start=1.23456,
        end=2.5,
        source="speech",
        lang="en",
        emotion="ANGRY",
        event="Speech",
        text="This is the third time!",
        raw="<|en|><|ANGRY|><|Speech|><|withitn|>This is the third time!",
        confidence=TagConfidence(lang=0.987654, emotion=0.51239, event=None),
    )
    base.update(kw)
    return Utterance(**base)


def minimal(**kw: Any) -> dict[str, Any]:
    rec: dict[str, Any] = {
        "call_id": "c1",
        "channel": 0,
        "speaker": "agent",
        "start": 0.5,
        "end": 1.75,
        "raw": "<|en|><|NEUTRAL|><|Speech|><|withitn|>How can I help?",
    }
    rec.update(kw)
    return rec


def test_record_keys_and_rounding() -> None:
    rec = record_from_utterance(utt())
    assert list(rec) == ISSUE_KEYS == list(RECORD_KEYS)
    assert rec["start"] == 1.235
    assert rec["end"] == 2.5
    assert rec["confidence"] == {"lang": 0.9877, "emotion": 0.5124, "event": None}
    assert list(rec["confidence"]) == ["lang", "emotion", "event"]
    json.dumps(rec, allow_nan=False)


def test_record_round_trips_through_json() -> None:
    original = utt(unknown_tags=())
    back = utterance_from_record(json.loads(json.dumps(record_from_utterance(original))))
    assert back == Utterance(
        **{
            **{f: getattr(original, f) for f in original.__slots__},
            "start": 1.235,
            "confidence": TagConfidence(0.9877, 0.5124, None),
        }
    )


def test_raw_only_record_is_filled_from_raw() -> None:
    u = utterance_from_record(minimal())
    assert (u.lang, u.emotion, u.event, u.text) == ("en", "NEUTRAL", "Speech", "How can I help?")
    assert u.source == "speech"
    assert u.confidence == TagConfidence()
    assert u.unknown_tags == ()


def test_given_fields_win_over_raw() -> None:
    # the writer abstained (low confidence) while raw keeps what the model said
    rec = minimal(
        raw="<|en|><|ANGRY|><|Speech|><|withitn|>No.",
        emotion="EMO_UNKNOWN",
        lang=None,
        confidence={"lang": 0.4, "emotion": 0.3, "event": 1},
    )
    u = utterance_from_record(rec)
    assert (u.lang, u.emotion, u.event, u.text) == (None, "EMO_UNKNOWN", "Speech", "No.")
    assert u.confidence == TagConfidence(0.4, 0.3, 1.0)


def test_multi_group_raw_is_one_utterance() -> None:
    raw = (
        "<|en|><|NEUTRAL|><|Speech|><|withitn|>Okay. "
        "<|zh|><|ANGRY|><|Laughter|><|woitn|>好 <|SPECIAL_TOKEN_3|>"
    )
    u = utterance_from_record(minimal(raw=raw))
    assert (u.lang, u.emotion, u.event, u.text) == ("en", "NEUTRAL", "Speech", "Okay. 好")
    assert u.raw == raw
    assert u.unknown_tags == ("SPECIAL_TOKEN_3",)


def test_untagged_raw_and_empty_raw() -> None:
    u = utterance_from_record(minimal(raw="박獗 않 hell"))
    assert (u.lang, u.emotion, u.event, u.text) == (None, None, None, "박獗 않 hell")
    u = utterance_from_record(minimal(raw=""))
    assert (u.lang, u.emotion, u.event, u.text, u.raw) == (None, None, None, "", "")


def test_text_only_record_gets_a_raw() -> None:
    rec = minimal(text="Hello", lang="en", emotion="HAPPY")
    del rec["raw"]
    u = utterance_from_record(rec)
    assert u.raw == "<|en|><|HAPPY|>Hello"
    assert (u.lang, u.emotion, u.event, u.text) == ("en", "HAPPY", None, "Hello")


def test_unknown_keys_are_ignored() -> None:
    u = utterance_from_record(minimal(key="rand_key_1", words=["How"], timestamp=[[0, 10]]))
    assert u.text == "How can I help?"


@pytest.mark.parametrize(
    ("change", "field", "fragment"),
    [
        ({"start": 2.0}, "", "end (1.75) is before start (2.0)"),
        ({"start": -0.1}, "start", "greater than or equal to 0"),
        ({"end": float("inf")}, "end", "finite"),
        ({"start": "0.5"}, "start", "valid number"),
        ({"start": True}, "start", "valid number"),
        ({"channel": "0"}, "channel", "valid integer"),
        ({"channel": 0.5}, "channel", "valid integer"),
        ({"speaker": "caller"}, "speaker", "'agent', 'customer' or 'unknown'"),
        ({"source": "music"}, "source", "'speech' or 'sound'"),
        ({"emotion": "angry"}, "emotion", "did you mean 'ANGRY'?"),
        ({"event": "Music"}, "event", "not a SenseVoice event"),
        ({"lang": "fr"}, "lang", "not a SenseVoice language"),
        ({"confidence": {"lang": 1.5}}, "confidence.lang", "less than or equal to 1"),
        ({"confidence": {"lang": 0.5, "emo": 0.1}}, "confidence.emo", "Extra inputs"),
        ({"raw": None}, "", "needs 'raw'"),
        ({"raw": 3}, "raw", "valid string"),
        ({"call_id": ""}, "call_id", "at least 1 character"),
    ],
)
def test_bad_records_name_file_line_and_field(
    change: dict[str, Any], field: str, fragment: str
) -> None:
    with pytest.raises(InputError) as info:
        utterance_from_record(minimal(**change), file="calls/a.jsonl", line=7)
    message = str(info.value)
    prefix = f"calls/a.jsonl:7: {field}: " if field else "calls/a.jsonl:7: "
    assert message.startswith(prefix), message
    assert fragment in message


def test_missing_required_keys_are_all_named() -> None:
    with pytest.raises(InputError) as info:
        utterance_from_record({"raw": "x"}, file="f.jsonl", line=1)
    for key in ("call_id", "channel", "speaker", "start", "end"):
        assert f"{key}: Field required" in str(info.value)


def test_error_record() -> None:
    exc = InputError("calls/b.wav: not an audio file")
    rec = error_record("b", "calls/b.wav", exc)
    assert rec == {
        "call_id": "b",
        "file": "calls/b.wav",
        "error": {"type": "InputError", "message": "calls/b.wav: not an audio file"},
    }
    assert ErrorRecord.model_validate(rec).error.type == "InputError"
    assert error_record("c", "c.wav", RuntimeError())["error"]["message"] == "RuntimeError"
    with pytest.raises(ValueError):
        ErrorRecord.model_validate({**rec, "extra": 1})


def test_record_model_is_frozen_and_strict() -> None:
    rec = UtteranceRecord.model_validate(minimal())
    with pytest.raises(ValueError):
        rec.start = 3.0  # type: ignore[misc]


times = st.floats(min_value=0, max_value=36_000, allow_nan=False)
probs = st.none() | st.floats(min_value=0, max_value=1)


@given(
    start=times,
    length=times,
    speaker=st.sampled_from(SPEAKERS),
    source=st.sampled_from(["speech", "sound"]),
    lang=st.none() | st.sampled_from(LANGS),
    emotion=st.none() | st.sampled_from(EMOTIONS),
    event=st.none() | st.sampled_from(EVENTS),
    text=st.text(max_size=20).map(str.strip),
    conf=st.tuples(probs, probs, probs),
)
def test_any_utterance_survives_the_json_edge(
    start: float,
    length: float,
    speaker: str,
    source: str,
    lang: str | None,
    emotion: str | None,
    event: str | None,
    text: str,
    conf: tuple[float | None, float | None, float | None],
) -> None:
    raw = format_group(lang, emotion, event, True, text)
    u = utt(
        start=start,
        end=start + length,
        speaker=speaker,
        source=source,
        lang=lang,
        emotion=emotion,
        event=event,
        text=text,
        raw=raw,
        confidence=TagConfidence(*conf),
    )
    line = json.dumps(record_from_utterance(u), ensure_ascii=False, allow_nan=False)
    back = utterance_from_record(json.loads(line))
    assert (back.speaker, back.source, back.lang, back.emotion, back.event) == (
        speaker,
        source,
        lang,
        emotion,
        event,
    )
    assert back.raw == raw
    assert back.text == text
    assert math.isclose(back.start, start, abs_tol=5e-4)
    assert back.start <= back.end
    for got, want in zip(
        (back.confidence.lang, back.confidence.emotion, back.confidence.event), conf, strict=True
    ):
        assert (got is None) == (want is None)
        if want is not None:
            assert got is not None and abs(got - want) <= 5e-5
