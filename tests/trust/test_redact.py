"""PII redaction: checked formats are always caught, look-alikes are left alone, nothing leaks."""

from __future__ import annotations

import datetime as dt
import json
import random

import pytest
from cryptography.fernet import Fernet
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from callsense.core import richtext
from callsense.core.errors import ConfigError, InputError
from callsense.pipeline.model import Utterance
from callsense.pipeline.records import record_from_utterance, utterance_from_record
from callsense.pipeline.redact import (
    ENTITY_KINDS,
    TOKENS,
    RedactionConfig,
    RedactionResult,
    Redactor,
    cn_id_valid,
    iban_valid,
    luhn_valid,
)

PROPS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
REDACTOR = Redactor()

# --- generators of valid values (computed check digits, never hard-coded) ------------------

digit_strings = st.integers(min_value=0, max_value=9).map(str)


def _luhn_complete(body: str) -> str:
    for d in "0123456789":
        if luhn_valid(body + d):
            return body + d
    raise AssertionError("unreachable: one check digit always fits")


@st.composite
def card_numbers(draw: st.DrawFn, valid: bool = True) -> str:
    length = draw(st.integers(13, 19)) if valid else draw(st.integers(16, 19))
    body = str(draw(st.integers(1, 9))) + "".join(
        draw(st.lists(digit_strings, min_size=length - 2, max_size=length - 2))
    )
    number = _luhn_complete(body)
    if not valid:
        number = number[:-1] + str((int(number[-1]) + draw(st.integers(1, 9))) % 10)
        assume(not cn_id_valid(number))
    sep = draw(st.sampled_from(["", " ", "-"])) if valid or length == 16 else ""
    return sep.join(number[i : i + 4] for i in range(0, len(number), 4)) if sep else number


_CN_WEIGHTS = [2 ** (17 - i) % 11 for i in range(17)]


@st.composite
def cn_ids(draw: st.DrawFn, valid: bool = True) -> str:
    area = str(draw(st.integers(110000, 829999)))
    born = draw(st.dates(dt.date(1900, 1, 1), dt.date(2024, 12, 31))).strftime("%Y%m%d")
    seq = f"{draw(st.integers(0, 999)):03d}"
    body = area + born + seq
    check = "10X98765432"[sum(int(c) * w for c, w in zip(body, _CN_WEIGHTS, strict=True)) % 11]
    if not valid:
        check = draw(st.sampled_from([c for c in "0123456789X" if c != check]))
        assume(not luhn_valid(body + check))  # an 18-digit Luhn number is a card
    if check == "X" and draw(st.booleans()):
        check = "x"
    return body + check


@st.composite
def ibans(draw: st.DrawFn, valid: bool = True) -> str:
    country = draw(st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=2, max_size=2))
    bban = draw(st.text("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=11, max_size=30))
    numeric = "".join(str(int(c, 36)) for c in bban + country + "00")
    check = 98 - int(numeric) % 97
    if not valid:
        check = (check + draw(st.integers(1, 96))) % 100
    compact = f"{country}{check:02d}{bban}"
    assume(iban_valid(compact) is valid)  # check and check + 97 are the same check
    if valid and draw(st.booleans()):
        return " ".join(compact[i : i + 4] for i in range(0, len(compact), 4))
    return compact


@st.composite
def emails(draw: st.DrawFn) -> str:
    alnum = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
    local = draw(st.text(alnum, min_size=1, max_size=8))
    local += draw(st.sampled_from(["", ".", "_", "+", "-"])) + draw(
        st.text(alnum, min_size=1, max_size=8)
    )
    labels = draw(st.lists(st.text(alnum.lower(), min_size=1, max_size=10), min_size=1, max_size=3))
    tld = draw(st.text("abcdefghijklmnopqrstuvwxyz", min_size=2, max_size=6))
    return f"{local}@{'.'.join(labels)}.{tld}"


@st.composite
def ssns(draw: st.DrawFn, valid: bool = True) -> str:
    if valid:
        area = draw(st.integers(1, 899).filter(lambda a: a != 666))
        group, serial = draw(st.integers(1, 99)), draw(st.integers(1, 9999))
    else:
        area, group, serial = draw(
            st.one_of(
                st.tuples(
                    st.sampled_from([0, 666, *range(900, 1000)]),
                    st.integers(0, 99),
                    st.integers(0, 9999),
                ),
                st.tuples(st.integers(0, 999), st.just(0), st.integers(0, 9999)),
                st.tuples(st.integers(0, 999), st.integers(0, 99), st.just(0)),
            )
        )
    return f"{area:03d}-{group:02d}-{serial:04d}"


@st.composite
def phones(draw: st.DrawFn) -> str:
    kind = draw(st.sampled_from(["cn", "nanp", "intl"]))
    if kind == "cn":
        d = (
            "1"
            + draw(st.sampled_from("3456789"))
            + "".join(draw(st.lists(digit_strings, min_size=9, max_size=9)))
        )
        return draw(st.sampled_from([d, f"{d[:3]} {d[3:7]} {d[7:]}", f"{d[:3]}-{d[3:7]}-{d[7:]}"]))
    if kind == "nanp":
        area = f"{draw(st.integers(2, 9))}{draw(st.integers(0, 99)):02d}"
        exch = f"{draw(st.integers(2, 9))}{draw(st.integers(0, 99)):02d}"
        line = f"{draw(st.integers(0, 9999)):04d}"
        return draw(
            st.sampled_from(
                [
                    f"({area}) {exch}-{line}",
                    f"{area}-{exch}-{line}",
                    f"{area} {exch} {line}",
                    area + exch + line,
                ]
            )
        )
    cc = str(draw(st.integers(1, 999)))
    rest = "".join(draw(st.lists(digit_strings, min_size=8 - len(cc), max_size=15 - len(cc))))
    return f"+{cc} {rest}"


# Surrounding text: English words, Chinese characters, digits and punctuation, so that the
# detectors see realistic neighbours (including other numbers).
filler = st.text(
    st.sampled_from(list("abcdefghij klmnop ,.?!'我的号码是请帮查一下谢谢好，。0123456789")),
    max_size=40,
)
joiners = st.sampled_from([(": ", ", "), ("，", "。"), (" ", ". "), ("是", "，谢谢")])


def _embed(prefix: str, value: str, suffix: str, join: tuple[str, str]) -> tuple[str, int, int]:
    left = prefix + join[0]
    return left + value + join[1] + suffix, len(left), len(left) + len(value)


def _assert_outside_unchanged(original: str, result: RedactionResult) -> None:
    rebuilt, pos = [], 0
    for e in result.entities:
        assert pos <= e.start < e.end <= len(original)
        rebuilt.append(original[pos : e.start] + TOKENS[e.kind])
        pos = e.end
    rebuilt.append(original[pos:])
    assert "".join(rebuilt) == result.text


def _check_caught(kind: str, value: str, prefix: str, suffix: str, join: tuple[str, str]) -> None:
    # "12 4111 1111 ..." is ambiguous (leftmost-longest valid reading wins): keep the value
    # apart from neighbouring digits by more than one space.
    assume(not (join[0] == " " and prefix[-1:].isdigit()))
    text, start, end = _embed(prefix, value, suffix, join)
    result = REDACTOR.redact(text)
    assert any(e.kind == kind and e.start <= start and e.end >= end for e in result.entities), (
        kind,
        value,
        text,
        result.entities,
    )
    assert value not in result.text
    _assert_outside_unchanged(text, result)
    again = REDACTOR.redact(result.text)
    assert again.text == result.text  # idempotent


@PROPS
@given(card_numbers(), filler, filler, joiners)
def test_valid_card_numbers_are_always_redacted(value, prefix, suffix, join) -> None:
    _check_caught("card", value, prefix, suffix, join)


@PROPS
@given(cn_ids(), filler, filler, joiners)
def test_valid_chinese_ids_are_always_redacted(value, prefix, suffix, join) -> None:
    _check_caught("cn_id", value, prefix, suffix, join)


@PROPS
@given(ibans(), filler, filler, joiners)
def test_valid_ibans_are_always_redacted(value, prefix, suffix, join) -> None:
    _check_caught("iban", value, prefix, suffix, join)


@PROPS
@given(emails(), filler, filler, joiners)
def test_emails_are_always_redacted(value, prefix, suffix, join) -> None:
    _check_caught("email", value, prefix, suffix, join)


@PROPS
@given(ssns(), filler, filler, joiners)
def test_valid_ssns_are_always_redacted(value, prefix, suffix, join) -> None:
    _check_caught("ssn", value, prefix, suffix, join)


@PROPS
@given(phones(), filler, filler, joiners)
def test_phone_numbers_are_always_redacted(value, prefix, suffix, join) -> None:
    _check_caught("phone", value, prefix, suffix, join)


@PROPS
@given(
    st.one_of(card_numbers(valid=False), cn_ids(valid=False), ssns(valid=False)),
    st.sampled_from(["my number is ", "我的号码是", ""]),
    st.sampled_from([" thanks", "，谢谢", ""]),
)
def test_failed_checksums_are_left_alone(value, prefix, suffix) -> None:
    text = prefix + value + suffix
    result = REDACTOR.redact(text)
    assert result.text == text, (value, result.entities)


@PROPS
@given(ibans(valid=False), st.sampled_from(["IBAN ", "账号 "]))
def test_ibans_with_a_wrong_check_are_not_ibans(value, prefix) -> None:
    result = REDACTOR.redact(prefix + value)
    assert result.text == prefix + value, (value, result.entities)


@PROPS
@given(st.text(max_size=80))
def test_any_text_is_idempotent_and_only_entities_change(text) -> None:
    result = REDACTOR.redact(text)
    _assert_outside_unchanged(text, result)
    assert REDACTOR.redact(result.text).text == result.text


# --- examples that pin the boundaries of the detectors --------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "明天早上9点见，一共$50。",
        "We paid 1,000,000 on 2024-01-15 at 10:30, order 12345.",
        "pi is 3.14159265 and the room is 1203",
        "card 4111 1111 1111 1112 does not pass Luhn",
        "000-12-3456, 666-12-3456, 901-12-3456, 123-00-4567, 123-45-0000",
        "DE00370400440532013000",  # IBAN shape, wrong check digits
        "it costs ¥13812345678",  # an amount, though shaped like a mobile
        "seven o clock and nine one one",
    ],
)
def test_look_alikes_survive(text: str) -> None:
    assert Redactor().redact(text).text == text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("call +1 415-555-2671 or (415) 555-2671", "call [PHONE] or [PHONE]"),
        ("我的电话是13812345678，卡号4111 1111 1111 1111谢谢", "我的电话是[PHONE]，卡号[CARD]谢谢"),
        ("身份证11010519491231002X好的", "身份证[CN_ID]好的"),
        ("ssn 123-45-6789.", "ssn [SSN]."),
        ("IBAN DE89 3704 0044 0532 0130 00 OK", "IBAN [IBAN] OK"),
        ("mail john.doe+x@mail.example.co.uk, thanks", "mail [EMAIL], thanks"),
        ("138 1234 5678 4111111111111111 13812345678", "[PHONE] [CARD] [PHONE]"),
        # SenseVoice without ITN: digits as words
        (
            "my number is four one five five five five two six seven one thanks",
            "my number is [PHONE] thanks",
        ),
        (
            "card four one one one one one one one one one one one one one one one ok",
            "card [CARD] ok",
        ),
        ("four one five 555 2671", "[PHONE]"),
        ("电话幺三八一二三四五六七八", "电话[PHONE]"),
    ],
)
def test_formats(text: str, expected: str) -> None:
    assert Redactor().redact(text).text == expected


def test_entity_subset_and_off_mode() -> None:
    text = "mail a@b.io, card 4111111111111111"
    only_email = Redactor(RedactionConfig(entities=("email",))).redact(text)
    assert only_email.text == "mail [EMAIL], card 4111111111111111"
    assert [e.kind for e in only_email.entities] == ["email"]
    off = Redactor(RedactionConfig(mode="off")).redact(text)
    assert off.text == text and off.entities == ()


def test_thousands_of_entities_are_each_found_once_in_detector_order() -> None:
    """Issue 19: overlaps are checked in time linear in the text (bench/redact.py has the
    figures); what is found must not change. 3000 cards in one digit run, 3000 apart, and
    mixed with e-mails, phones and a card an e-mail overlaps (the first detector wins)."""
    rng = random.Random(19)
    numbers = [_luhn_complete("4" + "".join(rng.choices("0123456789", k=14))) for _ in range(3000)]
    cards = [" ".join(n[i : i + 4] for i in range(0, 16, 4)) for n in numbers]
    for sep in (" ", ", "):
        text = sep.join(cards)
        result = Redactor().redact(text)
        assert result.text == sep.join(["[CARD]"] * len(cards))
        spans = [(e.start, e.end) for e in result.entities]
        expected, at = [], 0
        for card in cards:
            expected.append((at, at + len(card)))
            at += len(card) + len(sep)
        assert spans == expected
    mixed = "; ".join(
        f"mail a{i}@example.com, call 415-555-{2000 + i:04d}, card {cards[i]}" for i in range(2000)
    )
    # the e-mail detector runs first: a card number that is an address's name is an e-mail
    result = Redactor().redact(mixed + "; 4111111111111111@example.com")
    assert (
        result.text
        == "; ".join("mail [EMAIL], call [PHONE], card [CARD]" for _ in range(2000)) + "; [EMAIL]"
    )
    kinds = [e.kind for e in result.entities]
    assert kinds == ["email", "phone", "card"] * 2000 + ["email"]


# --- utterances, records, raw strings ---------------------------------------------------------

RAW = (
    "<|en|><|ANGRY|><|Speech|><|woitn|>my card is "
    "four one one one one one one one one one one one one one one one"
)


def _utt(raw: str) -> Utterance:
    g = richtext.parse_one(raw)
    return Utterance(
        "c1", 0, "customer", 1.0, 4.0, "speech", g.lang, g.emotion, g.event, g.text, raw
    )


def test_utterance_keeps_tags_and_loses_the_number() -> None:
    red = Redactor().redact_utterance(_utt(RAW))
    assert red.raw == "<|en|><|ANGRY|><|Speech|><|woitn|>my card is [CARD]"
    assert red.text == "my card is [CARD]"
    assert (red.lang, red.emotion, red.event, red.start, red.end) == (
        "en",
        "ANGRY",
        "Speech",
        1.0,
        4.0,
    )


def test_merged_groups_redact_each_text_in_place() -> None:
    zh, en = "<|zh|><|NEUTRAL|><|Speech|><|withitn|>", "<|en|><|HAPPY|><|Speech|><|withitn|>"
    raw = f"{zh}电话13812345678。{en} mail a@b.io "
    red = Redactor().redact_raw(raw)
    assert red == f"{zh}电话[PHONE]。{en} mail [EMAIL] "
    assert [g.emotion for g in richtext.parse(red)] == ["NEUTRAL", "HAPPY"]


def test_a_number_split_across_groups_is_still_removed() -> None:
    head = "<|en|><|NEUTRAL|><|Speech|><|withitn|>"
    raw = f"{head}call 415{head}555 2671"
    red = Redactor().redact_raw(raw)
    assert "2671" not in red and "415" not in red
    assert richtext.parse_one(red).emotion == "NEUTRAL"
    assert richtext.plain_text(red) == "call [PHONE]"


def test_record_round_trip_through_the_jsonl_reader() -> None:
    rec = record_from_utterance(
        _utt("<|en|><|NEUTRAL|><|Speech|><|withitn|>reach me at jane@corp.example")
    )
    red = Redactor().redact_record(rec)
    assert tuple(red) == tuple(rec)
    assert red["text"] == "reach me at [EMAIL]"
    back = utterance_from_record(red)
    assert back.text == "reach me at [EMAIL]" and back.emotion == "NEUTRAL"
    assert "jane" not in json.dumps(red)


# --- redacted_and_original: the original only ever encrypted ----------------------------------


@pytest.fixture
def key_env(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("CALLSENSE_TEST_PII_KEY", Fernet.generate_key().decode())
    return "CALLSENSE_TEST_PII_KEY"


def test_original_is_sealed_and_recoverable(key_env: str) -> None:
    cfg = RedactionConfig(mode="redacted_and_original", original_key_env=key_env)
    redactor = Redactor(cfg)
    text = "ssn 123-45-6789 card 4111111111111111"
    result = redactor.redact(text)
    assert result.text == "ssn [SSN] card [CARD]"
    assert result.original is not None and "6789" not in result.original
    assert redactor.decrypt_original(result.original) == text
    shown = repr(result) + str(result)
    assert "123-45-6789" not in shown and "4111111111111111" not in shown
    rec = redactor.redact_record({"call_id": "c", "text": text, "raw": text})
    assert json.loads(redactor.decrypt_original(rec["original"])) == {"text": text, "raw": text}
    assert "6789" not in json.dumps(rec)


def test_original_needs_a_key_at_start_up(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValidationError, match="original_key_env"):
        RedactionConfig(mode="redacted_and_original")
    monkeypatch.delenv("NO_SUCH_KEY_VAR", raising=False)
    cfg = RedactionConfig(mode="redacted_and_original", original_key_env="NO_SUCH_KEY_VAR")
    with pytest.raises(ConfigError, match=r"\$NO_SUCH_KEY_VAR is not set"):
        Redactor(cfg)
    with pytest.raises(ConfigError, match="not a Fernet key"):
        Redactor(cfg, environ={"NO_SUCH_KEY_VAR": "hunter2"})


def test_a_token_from_another_key_is_an_input_error(key_env: str) -> None:
    cfg = RedactionConfig(mode="redacted_and_original", original_key_env=key_env)
    other = Fernet(Fernet.generate_key()).encrypt(b"x").decode()
    with pytest.raises(InputError, match="cannot be decrypted"):
        Redactor(cfg).decrypt_original(other)
    with pytest.raises(ConfigError):
        Redactor().encrypt_original("x")  # mode redacted keeps no originals


def test_config_rejects_unknown_keys_and_entities() -> None:
    with pytest.raises(ValidationError):
        RedactionConfig.model_validate({"mode": "redacted", "entites": ["email"]})
    with pytest.raises(ValidationError):
        RedactionConfig.model_validate({"entities": ["passport"]})
    assert RedactionConfig().entities == ENTITY_KINDS
