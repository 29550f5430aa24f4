"""The built-in keyword/regex classifier on SenseVoice-style text in five languages."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from callsense.core.yamlsource import load_yaml, validate_data
from callsense.pipeline.model import Utterance
from callsense.pipeline.nlu import IntentClassifier
from callsense.pipeline.nlu.config import IntentsConfig
from callsense.pipeline.nlu.keywords import KeywordHook, keyword_regex, normalize

ROOT = Path(__file__).resolve().parents[2]
INTENTS = ROOT / "configs" / "intents.yaml"


@pytest.fixture(scope="module")
def nlu() -> IntentClassifier:
    return IntentClassifier.load(INTENTS)


@pytest.mark.parametrize(
    ("text", "lang", "intent"),
    [
        # the same sentence with ITN (cased, punctuated) and without it
        ("I want to speak to a human.", "en", "speak_to_human"),
        ("i want to speak to a human", "en", "speak_to_human"),
        ("I'd like to CANCEL my subscription!", "en", "cancel"),
        ("i would like to cancel my subscription", "en", "cancel"),
        ("Please cancelled it", "en", "cancel"),
        ("When do I get my money back?", "en", "refund"),
        ("I was refunded only half", "en", "refund"),
        ("This is ridiculous.", "en", "complaint"),
        ("i want to file a complaint", "en", "complaint"),
        ("My internet is down again", "en", "technical_problem"),
        ("It doesn't work", "en", "technical_problem"),
        ("it doesnt work", "en", "technical_problem"),
        ("I can’t log in", "en", "technical_problem"),
        ("Why was I overcharged on my invoice?", "en", "billing"),
        ("Thank you so much.", "en", "thanks"),
        ("okay bye bye", "en", "goodbye"),
        # Chinese: with and without punctuation, spaces between characters, traditional
        ("我要转人工。", "zh", "speak_to_human"),
        ("我 要 转 人工", "zh", "speak_to_human"),
        ("帮我取消这个套餐", "zh", "cancel"),
        ("我要退款", "zh", "refund"),
        ("我要投訴你們", "zh", "complaint"),
        ("网络连不上了，怎么回事？", "zh", "technical_problem"),
        ("这个月的账单不对", "zh", "billing"),
        ("谢谢", "zh", "thanks"),
        ("好的，再见！", "zh", "goodbye"),
        # Cantonese, Japanese, Korean; full-width Latin
        ("我想搵真人", "yue", "speak_to_human"),
        ("唔該晒", "yue", "thanks"),
        ("解約したいです", "ja", "cancel"),
        ("返金してください", "ja", "refund"),
        ("환불해 주세요", "ko", "refund"),
        ("요금이 이상해요", "ko", "billing"),
        ("ＲＥＦＵＮＤ please", "en", "refund"),
        # English inside Chinese text: no word boundary is needed next to CJK
        ("我要cancel", "zh", "cancel"),
    ],
)
def test_shipped_intents_are_found(
    nlu: IntentClassifier, text: str, lang: str, intent: str
) -> None:
    result = nlu.classify_text(text, lang)
    assert result.intent is not None, text
    assert (result.intent.name, result.intent.hook) == (intent, "keywords")
    assert result.errors == ()


@pytest.mark.parametrize(
    "text",
    [
        "hello how are you",
        "a billion people",  # "bill" must not hit inside another word
        "the weather is nice today",
        "今天天气不错",
        "",
        "   ",
        "。。。",
    ],
)
def test_no_intent_when_nothing_matches(nlu: IntentClassifier, text: str) -> None:
    assert nlu.classify_text(text, "en").intent is None


def test_priority_is_yaml_order(nlu: IntentClassifier) -> None:
    # goodbye is listed before thanks; cancel before complaint
    assert nlu.classify_text("Thanks, bye!", "en").intent.name == "goodbye"  # type: ignore[union-attr]
    result = nlu.classify_text("This is ridiculous, cancel my account", "en")
    assert result.intent is not None and result.intent.name == "cancel"


def test_only_customer_speech_is_classified(nlu: IntentClassifier) -> None:
    def utt(speaker: str, source: str) -> Utterance:
        return Utterance(
            "c", 0, speaker, 0.0, 1.0, source, "en", "NEUTRAL", "Speech", "I want a refund", ""
        )  # type: ignore[arg-type]

    assert nlu.classify(utt("customer", "speech")).intent is not None
    assert nlu.classify(utt("agent", "speech")).intent is None
    assert nlu.classify(utt("customer", "sound")).intent is None


def test_normalize_folds_itn_variants() -> None:
    assert normalize("I Don't  Know.") == normalize("i dont know") == "i dont know"
    assert normalize("我 要 退款 。") == normalize("我要退款") == "我要退款"
    assert normalize("ＡＢＣ，ｄｅｆ") == "abc def"
    assert normalize("refund 我 要") == "refund 我要"


def test_star_allows_endings_plain_keyword_does_not() -> None:
    from callsense.pipeline.nlu.config import IntentSpec

    hook = KeywordHook(
        "k",
        {
            "exact": IntentSpec(keywords={"en": ["pay"]}),
            "prefix": IntentSpec(keywords={"en": ["refund*"]}),
        },
    )
    assert hook.classify("I will pay", None) is not None
    assert hook.classify("I will repay", None) is None
    assert hook.classify("payment", None) is None
    hit = hook.classify("it was refunded", None)
    assert hit is not None and hit.name == "prefix"
    assert hook.classify("nonrefundable", None) is None


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=80))
def test_any_text_is_classified_without_error(text: str) -> None:
    hook = _HOOK
    result = hook.classify(text, None)
    assert result is None or result.name in _NAMES
    assert normalize(normalize(text)) == normalize(text)


_NLU = IntentClassifier.load(INTENTS)
_HOOK = _NLU.hooks[0]
_NAMES = set(_NLU.intent_names)


# --- the substring matcher finds what one regex per intent found (issue 19) ------------------

_INTENTS = validate_data(IntentsConfig, load_yaml(INTENTS)).intents


def _one_regex_per_intent() -> list[tuple[str, re.Pattern[str]]]:
    """The matcher as it was: every keyword and pattern of an intent in one alternation,
    searched over the whole text (each keyword tried at every position)."""
    rules = []
    for intent, spec in _INTENTS.items():
        parts = [keyword_regex(k) for ks in spec.keywords.values() for k in ks]
        parts += [f"(?:{p})" for ps in spec.patterns.values() for p in ps]
        if parts:
            rules.append((intent, re.compile("|".join(parts), re.IGNORECASE)))
    return rules


_OLD_RULES = _one_regex_per_intent()
_KEYWORDS = sorted(
    {k.rstrip("*") for spec in _INTENTS.values() for ks in spec.keywords.values() for k in ks}
)
# keywords and the characters around which boundaries matter: Latin letters, digits, CJK,
# spaces, punctuation and apostrophes that normalize removes
_texts = st.lists(
    st.one_of(
        st.sampled_from(_KEYWORDS),
        st.text(alphabet="abcdegnrsx019 .,'!?-我要人工退款", max_size=6),
    ),
    max_size=8,
).map("".join)


@settings(max_examples=400, deadline=None)
@given(_texts)
def test_keyword_matcher_agrees_with_one_regex_per_intent(text: str) -> None:
    norm = normalize(text)
    old = next((intent for intent, rx in _OLD_RULES if norm and rx.search(norm)), None)
    hit = _HOOK.classify(text, None)
    assert (hit.name if hit else None) == old
