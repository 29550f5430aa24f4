"""SenseVoice rich-text parser: real oddities, the real tokenizer's tags, property tests."""

from __future__ import annotations

import itertools
import logging
import string
import subprocess
import sys

import pytest
import sentencepiece
from hypothesis import assume, given
from hypothesis import strategies as st

from callsense.core import richtext
from callsense.core.richtext import (
    EMOTIONS,
    EVENTS,
    ITNS,
    LANGS,
    TAG_RE,
    TOKENIZER_LANGS,
    RichGroup,
    display_text,
    format_group,
    parse,
    parse_one,
    plain_text,
    reset_unknown_tag_counts,
    unknown_tag_counts,
)
from tests.conftest import SENSEVOICE_FILES

BPE = SENSEVOICE_FILES / "chn_jpn_yue_eng_ko_spectok.bpe.model"


def fields(g: RichGroup) -> tuple[object, ...]:
    return (g.lang, g.emotion, g.event, g.itn, g.text, g.unknown_tags)


# --- the real tokenizer -------------------------------------------------------------------


@pytest.fixture(scope="module")
def tokenizer_tags() -> list[str]:
    sp = sentencepiece.SentencePieceProcessor(model_file=str(BPE))
    pieces = [sp.id_to_piece(i) for i in range(sp.get_piece_size())]
    return [p for p in pieces if p.startswith("<|") and p.endswith("|>")]


def test_vocabulary_is_the_real_tokenizers(tokenizer_tags: list[str]) -> None:
    names = {t[2:-2] for t in tokenizer_tags}
    for name in (*LANGS, *EMOTIONS, *EVENTS, *ITNS):
        assert name in names, name
    assert names >= TOKENIZER_LANGS
    # ids 24884..24988 are the 105 language tags; nospeech sits apart (24992)
    sp = sentencepiece.SentencePieceProcessor(model_file=str(BPE))
    lang_tags = {sp.id_to_piece(i)[2:-2] for i in range(24884, 24989)}
    assert len(lang_tags) == 105
    assert lang_tags | {"nospeech"} == TOKENIZER_LANGS


def test_every_tokenizer_tag_matches_the_tag_pattern(tokenizer_tags: list[str]) -> None:
    assert len(tokenizer_tags) == 171
    for tag in tokenizer_tags:
        assert TAG_RE.fullmatch(tag), tag
        [group] = parse(tag)
        assert group.raw == tag
        assert group.text == ""


def test_every_tokenizer_tag_is_known_or_reported(tokenizer_tags: list[str]) -> None:
    known = set(LANGS) | set(EMOTIONS) | set(EVENTS) | set(ITNS)
    for tag in tokenizer_tags:
        [group] = parse(tag)
        name = tag[2:-2]
        if name in known:
            assert group.unknown_tags == ()
            assert name in (group.lang, group.emotion, group.event) or group.itn is not None
        else:
            assert group.unknown_tags == (name,)


# --- examples of real output and its oddities ----------------------------------------------


def test_canonical_group() -> None:
    [g] = parse("<|en|><|ANGRY|><|Speech|><|withitn|>Yes.")
    assert fields(g) == ("en", "ANGRY", "Speech", True, "Yes.", ())
    [g] = parse("<|zh|><|SAD|><|Laughter|><|woitn|>好")
    assert fields(g) == ("zh", "SAD", "Laughter", False, "好", ())


@pytest.mark.parametrize("joiner", ["", " "])
def test_merge_vad_groups_are_split_back(joiner: str) -> None:
    parts = [
        "<|en|><|NEUTRAL|><|Speech|><|withitn|>Hello there.",
        "<|en|><|ANGRY|><|Speech|><|withitn|>This is the third time!",
        "<|nospeech|><|EMO_UNKNOWN|><|Laughter|><|woitn|>",
        "<|ja|><|HAPPY|><|BGM|><|withitn|>はい。",
    ]
    raw = joiner.join(parts)
    groups = parse(raw)
    assert [(g.lang, g.emotion, g.event) for g in groups] == [
        ("en", "NEUTRAL", "Speech"),
        ("en", "ANGRY", "Speech"),
        ("nospeech", "EMO_UNKNOWN", "Laughter"),
        ("ja", "HAPPY", "BGM"),
    ]
    assert [g.text for g in groups] == ["Hello there.", "This is the third time!", "", "はい。"]
    assert "".join(g.raw for g in groups) == raw
    # the joining space stays in the raw of the group before it
    assert groups[0].raw == parts[0] + joiner


def test_tags_in_another_order_stay_one_group() -> None:
    [g] = parse("<|NEUTRAL|><|withitn|><|en|><|Speech|>ok")
    assert fields(g) == ("en", "NEUTRAL", "Speech", True, "ok", ())


def test_missing_tags_are_none() -> None:
    [g] = parse("<|en|>just text")
    assert fields(g) == ("en", None, None, None, "just text", ())


def test_a_repeated_slot_opens_a_group_even_without_text() -> None:
    groups = parse("<|en|><|NEUTRAL|><|en|><|HAPPY|>hi")
    assert [fields(g) for g in groups] == [
        ("en", "NEUTRAL", None, None, "", ()),
        ("en", "HAPPY", None, None, "hi", ()),
    ]


def test_tag_inside_text_opens_a_group_and_keeps_the_text() -> None:
    raw = "<|en|><|NEUTRAL|><|Speech|><|withitn|>so I said <|Laughter|> no way"
    first, second = parse(raw)
    assert fields(first) == ("en", "NEUTRAL", "Speech", True, "so I said", ())
    assert fields(second) == (None, None, "Laughter", None, "no way", ())
    one = parse_one(raw)
    assert fields(one) == ("en", "NEUTRAL", "Speech", True, "so I said no way", ())
    assert one.raw == raw
    # the slot is free, yet text came first: still a new group
    assert [fields(g) for g in parse("<|en|>I said <|HAPPY|> fine")] == [
        ("en", None, None, None, "I said", ()),
        (None, "HAPPY", None, None, "fine", ()),
    ]


def test_other_language_tags_are_reported_and_still_split_groups() -> None:
    raw = "<|en|><|NEUTRAL|><|Speech|><|withitn|><|zh/en|><|HAPPY|><|Speech|><|withitn|>好的"
    first, second = parse(raw)
    assert fields(first) == ("en", "NEUTRAL", "Speech", True, "", ())
    assert fields(second) == (None, "HAPPY", "Speech", True, "好的", ("zh/en",))


def test_special_end_of_event_and_task_tags_are_kept() -> None:
    raw = "<|ASR|><|en|><|SPECIAL_TOKEN_3|><|NEUTRAL|><|/Speech|><|BGM|><|/BGM|>music"
    [g] = parse(raw)
    assert fields(g) == (
        "en",
        "NEUTRAL",
        "BGM",
        None,
        "music",
        ("ASR", "SPECIAL_TOKEN_3", "/Speech", "/BGM"),
    )
    assert g.raw == raw


def test_random_model_garbage_is_one_tagless_group() -> None:
    raw = "박獗 않 hell 갈朊 championship 높아旺"
    assert parse(raw) == [RichGroup(None, None, None, None, raw, raw, ())]


def test_empty_and_blank_strings() -> None:
    assert parse("") == []
    assert parse_one("") == RichGroup(None, None, None, None, "", "", ())
    assert parse("  ") == [RichGroup(None, None, None, None, "", "  ", ())]
    [g] = parse("<|en|><|NEUTRAL|><|Speech|><|woitn|>")
    assert g.text == ""


def test_text_with_bracket_characters_is_text() -> None:
    raw = "<|en|><|NEUTRAL|><|Speech|><|woitn|>a <| b |> c <|> |x| <<|>>"
    [g] = parse(raw)
    assert g.text == "a <| b |> c <|> |x| <<|>>"
    assert g.unknown_tags == ()


def test_whitespace_between_tags_and_a_leading_space_in_text() -> None:
    [g] = parse(" <|en|> <|NEUTRAL|><|Speech|><|withitn|> test ")
    assert fields(g) == ("en", "NEUTRAL", "Speech", True, "test", ())


# --- helpers ---------------------------------------------------------------------------------


def test_format_group() -> None:
    assert (
        format_group("en", "ANGRY", "Speech", True, "Yes.")
        == "<|en|><|ANGRY|><|Speech|><|withitn|>Yes."
    )
    assert format_group(None, None, "BGM", False, "") == "<|BGM|><|woitn|>"
    assert (
        format_group("zh", None, None, None, "好", ("SPECIAL_TOKEN_3",))
        == "<|zh|><|SPECIAL_TOKEN_3|>好"
    )


def test_plain_text_and_display_text() -> None:
    raw = "<|en|><|ANGRY|><|Cough|><|withitn|>Yes. <|en|><|NEUTRAL|><|Speech|><|withitn|>Fine."
    assert plain_text(raw) == "Yes. Fine."
    assert display_text(raw) == "😷Yes.😡 Fine."
    assert display_text("<|zh|><|HAPPY|><|Applause|><|woitn|>好") == "👏好😊"
    assert plain_text("<|SPECIAL_TOKEN_1|><|en|>") == ""


def test_unknown_tags_are_counted_and_logged_once_without_text(
    caplog: pytest.LogCaptureFixture,
) -> None:
    reset_unknown_tag_counts()
    caplog.set_level(logging.WARNING, logger="callsense.core.richtext")
    secret = "my card number is 4111"
    parse(f"<|en|><|SPECIAL_TOKEN_7|><|/Speech|>{secret}")
    parse(f"<|SPECIAL_TOKEN_7|>{secret}")
    assert unknown_tag_counts() == {"SPECIAL_TOKEN_7": 2, "/Speech": 1}
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 2
    assert all(secret not in m for m in messages)
    assert any("SPECIAL_TOKEN_7" in m for m in messages)
    reset_unknown_tag_counts()
    assert unknown_tag_counts() == {}


def test_import_is_light() -> None:
    heavy = ("torch", "funasr", "numpy", "pydantic")
    code = f"import sys, core.richtext; print(sorted(m for m in {heavy} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# --- properties --------------------------------------------------------------------------------

KNOWN = set(LANGS) | set(EMOTIONS) | set(EVENTS) | set(ITNS)
unknown_names = st.one_of(
    st.sampled_from(sorted(TOKENIZER_LANGS - set(LANGS))),
    st.sampled_from(["ASR", "AED", "SER", "/Speech", "/BGM", "/Laughter", "SPECIAL_TOKEN_3"]),
    st.text(alphabet=string.ascii_letters + string.digits + "_/.-", min_size=1, max_size=12),
).filter(lambda n: n not in KNOWN)

text_chars = st.one_of(
    st.characters(blacklist_categories=("Cs",)),
    st.sampled_from([*"<|>/ 好はい한국어é", "<|", "|>", "<|en", "en|>"]),
)
texts = (
    st.lists(text_chars, max_size=12)
    .map(lambda cs: "".join(cs).strip())
    .filter(lambda t: not TAG_RE.search(t))
)


@st.composite
def groups_st(draw: st.DrawFn) -> tuple[object, ...]:
    lang = draw(st.none() | st.sampled_from(LANGS))
    emotion = draw(st.none() | st.sampled_from(EMOTIONS))
    event = draw(st.none() | st.sampled_from(EVENTS))
    itn = draw(st.none() | st.booleans())
    unknown = draw(st.lists(unknown_names, max_size=3))
    # two language tags in one header would be two groups by definition
    lang_like = [u for u in unknown if u in TOKENIZER_LANGS]
    if lang is not None or len(lang_like) > 1:
        unknown = [u for u in unknown if u not in TOKENIZER_LANGS] + (
            lang_like[:1] if lang is None else []
        )
    return (lang, emotion, event, itn, draw(texts), tuple(unknown))


def _first_tag(g: tuple[object, ...]) -> str | None:
    lang, emotion, event, itn, _text, unknown = g
    for name in (lang, emotion, event):
        if name is not None:
            return str(name)
    if itn is not None:
        return "withitn"
    return unknown[0] if unknown else None  # type: ignore[index]


def _opens_group(prev: tuple[object, ...], nxt: tuple[object, ...]) -> bool:
    """The documented boundary rule: text before it, or its slot already filled."""
    first = _first_tag(nxt)
    if first is None:
        return False
    if prev[4]:
        return True
    slot = richtext.slot_of(first)
    if slot == "itn":
        return prev[3] is not None
    if slot is not None:
        return prev[("lang", "emotion", "event").index(slot)] is not None
    if first in TOKENIZER_LANGS:
        return prev[0] is not None or any(u in TOKENIZER_LANGS for u in prev[5])  # type: ignore[attr-defined]
    return False


@given(st.lists(groups_st(), max_size=6))
def test_formatted_groups_round_trip(groups: list[tuple[object, ...]]) -> None:
    assume(all(_first_tag(g) is not None or g[4] for g in groups[:1]))
    assume(all(_opens_group(a, b) for a, b in itertools.pairwise(groups)))
    raws = [format_group(*g) for g in groups]  # type: ignore[arg-type]
    raw = "".join(raws)
    parsed = parse(raw)
    assert [fields(g) for g in parsed] == groups
    assert [g.raw for g in parsed] == raws


@given(st.lists(groups_st(), min_size=1, max_size=6), st.sampled_from(["", " ", "  \n"]))
def test_any_group_sequence_is_lossless(groups: list[tuple[object, ...]], joiner: str) -> None:
    raw = joiner.join(format_group(*g) for g in groups)  # type: ignore[arg-type]
    parsed = parse(raw)
    assert "".join(g.raw for g in parsed) == raw
    # every known tag written is found again, in order
    written = [m.group(1) for m in TAG_RE.finditer(raw)]
    found = [m.group(1) for g in parsed for m in TAG_RE.finditer(g.raw)]
    assert found == written
    for g in parsed:
        assert not TAG_RE.search(g.text)


fuzz_pieces = st.one_of(
    st.text(max_size=6),
    st.sampled_from(
        [f"<|{n}|>" for n in (*sorted(KNOWN), "zh/en", "/Speech", "SPECIAL_TOKEN_3", "ASR")]
    ),
    st.sampled_from(["<|", "|>", "<", "|", ">", " ", "\n", "<||>", "<|a b|>"]),
)


@given(st.lists(fuzz_pieces, max_size=20).map("".join))
def test_arbitrary_text_never_crashes_and_loses_nothing(raw: str) -> None:
    groups = parse(raw)
    assert "".join(g.raw for g in groups) == raw
    assert (groups == []) == (raw == "")
    for g in groups:
        assert g.lang in (None, *LANGS)
        assert g.emotion in (None, *EMOTIONS)
        assert g.event in (None, *EVENTS)
        assert g.text == g.text.strip()
        assert not TAG_RE.search(g.text)
        assert all(n not in KNOWN for n in g.unknown_tags)
    one = parse_one(raw)
    assert one.raw == raw
    assert one.text == " ".join(g.text for g in groups if g.text)
    assert plain_text(raw) == one.text
    display_text(raw)
