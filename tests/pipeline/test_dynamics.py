"""Conversation dynamics of constructed two-channel calls whose numbers are known by hand,
and the policy session's running numbers agreeing with the summary's at the call's end."""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from callsense.core.dynamics import HeatWatch, Temperature
from callsense.pipeline.compliance import ComplianceConfig
from callsense.pipeline.config import CallsenseConfig
from callsense.pipeline.dynamics import call_dynamics, speech_units
from callsense.pipeline.model import CallTranscript, Gap, Utterance
from callsense.pipeline.policy_stage import CallPolicy
from callsense.pipeline.session import replay_transcript
from callsense.pipeline.summary import summarize
from callsense.rules.compiler import Feature
from callsense.rules.dynamics import DynamicsTracker
from callsense.rules.engine import PolicyEngine
from callsense.rules.model import Observation

CHANNEL = {"customer": 0, "agent": 1, "unknown": 2}


def u(
    speaker: str,
    start: float,
    end: float,
    text: str = "",
    *,
    emotion: str | None = "NEUTRAL",
    event: str = "Speech",
    source: str = "speech",
    lang: str | None = "en",
) -> Utterance:
    return Utterance(
        "c", CHANNEL[speaker], speaker, start, end, source, lang, emotion, event, text, ""
    )  # type: ignore[arg-type]


def call(*utts: Utterance, duration: float | None = 60.0, gaps: tuple = ()) -> CallTranscript:
    """The utterances in the order they end, as the pipeline hands them on."""
    ordered = tuple(sorted(utts, key=lambda x: (x.end, x.channel)))
    return CallTranscript("c", ordered, duration=duration, channels=2, gaps=gaps)


MUSIC = {"source": "sound", "event": "BGM", "emotion": None}

# customer ch0, agent ch1, one minute:
#   0-10 customer (ANGRY); 8-12 agent starts inside it: 2 s overlap, an interruption
#   11.9-15 customer: 0.1 s over the agent's end (padding at a turn change, neither)
#   20-30 customer; 24-24.5 agent backchannel: 0.5 s overtalk, no interruption
#   30-40 nobody: the longest silence; 40-45 customer (HAPPY)
#   45-55 hold music on the agent's channel, 46-54 its echo on the customer's: 10 s of hold
#   55-58 customer laughs; 58-60 silence
CALL = call(
    u("customer", 0, 10, "I have called three times about this bill", emotion="ANGRY"),
    u("agent", 8, 12, "Sorry, let me check that for you now"),
    u("customer", 11.9, 15, "It is wrong again"),
    u("customer", 20, 30, "You charged me twice for the same month and nobody calls back"),
    u("agent", 24, 24.5, "right"),
    u("customer", 40, 45, "Oh, that's great, thank you", emotion="HAPPY"),
    u("agent", 45, 55, **MUSIC),
    u("customer", 46, 54, **MUSIC),
    u("customer", 55, 58, "ha ha", event="Laughter"),
)


def test_talk_silence_hold_overtalk_and_interruptions_of_a_known_call() -> None:
    d = call_dynamics(CALL)
    assert d.duration_s == 60.0 and d.not_streamed_s == 0.0
    assert d.talk_s == pytest.approx(33.0)  # 0-15, 20-30, 40-45, 55-58
    assert d.non_talk_s == pytest.approx(27.0) and d.non_talk_share == pytest.approx(0.45)
    assert d.silence_s == pytest.approx(17.0)  # 15-20, 30-40, 58-60
    assert (d.longest_silence_s, d.longest_silence_at) == (10.0, 30.0)
    assert d.hold_s == pytest.approx(10.0)  # 45-55 once, though both channels carry it
    assert d.overtalk_s == pytest.approx(2.5) and d.overtalk_count == 2
    assert d.interruptions == 1
    agent, customer = d.speakers["agent"], d.speakers["customer"]
    assert (agent.talk_s, agent.utterances, agent.interruptions) == (4.5, 2, 1)
    assert customer.talk_s == pytest.approx(31.1) and customer.interruptions == 0
    assert customer.utterances == 5  # the music on its channel is not talk
    assert agent.talk_ratio == pytest.approx(4.5 / 35.6)
    assert agent.talk_ratio + customer.talk_ratio == pytest.approx(1.0)
    assert (agent.words, agent.words_per_minute) == (9, pytest.approx(120.0))
    assert customer.words == 31 and customer.words_per_minute == pytest.approx(31 * 60 / 31.1)
    assert customer.chars_per_minute is None


def test_a_platform_gap_is_neither_talk_nor_silence() -> None:
    d = call_dynamics(call(*CALL.utterances, gaps=(Gap(30.0, 8.0, "paused"),)))
    assert d.not_streamed_s == 8.0
    assert d.non_talk_s == pytest.approx(19.0)
    assert d.non_talk_share == pytest.approx(19.0 / 52.0)
    assert d.silence_s == pytest.approx(9.0)  # 15-20, 38-40, 58-60
    assert (d.longest_silence_s, d.longest_silence_at) == (5.0, 15.0)


def test_the_call_runs_to_the_last_utterance_when_the_duration_is_unknown() -> None:
    d = call_dynamics(call(u("customer", 2, 5), duration=None))
    assert (d.duration_s, d.talk_s, d.silence_s, d.minutes) == (5.0, 3.0, 2.0, 1)
    empty = call_dynamics(CallTranscript("e", (), duration=None))
    assert (empty.duration_s, empty.minutes, empty.non_talk_share) == (0.0, 0, None)
    assert empty.longest_silence_at is None and empty.temperature.end_weighted is None


def test_interruptions_need_the_other_side_speaking_first_and_a_long_enough_overlap() -> None:
    d = call_dynamics(
        call(
            u("customer", 0, 10),
            u("agent", 3, 3.9),  # 0.9 s: a backchannel
            u("agent", 5, 6),  # exactly the minimum overlap: counts
            u("customer", 20, 30),
            u("agent", 20, 25),  # both start at 20: nobody started first
            u("agent", 35, 40),
            u("customer", 36, 50),  # the customer cuts in: 4 s
            u("agent", 49.8, 55),  # 0.2 s over the customer's end (and overtalk below 0.25 s)
        )
    )
    assert d.speakers["agent"].interruptions == 1 and d.speakers["customer"].interruptions == 1
    assert d.overtalk_count == 4 and d.overtalk_s == pytest.approx(0.9 + 1 + 5 + 4)


@pytest.mark.parametrize(
    ("text", "lang", "units"),
    [
        ("I don't know, 3 e-mails?", "en", (5, 0)),
        ("我要退款 refund 吧", "zh", (0, 6)),
        ("我要退款", None, (0, 4)),
        ("払い戻し", "ja", (0, 4)),
        ("안녕 하세요", "ko", (2, 0)),
        ("", "en", (0, 0)),
        ("ok", "nospeech", (1, 0)),
    ],
)
def test_speech_units_count_words_or_cjk_characters(
    text: str, lang: str | None, units: tuple
) -> None:
    assert speech_units(text, lang) == units


def test_chinese_speaking_rate_is_in_characters_per_minute() -> None:
    d = call_dynamics(call(u("customer", 0, 6, "我要退款，马上", lang="zh"), duration=10))
    customer = d.speakers["customer"]
    assert (customer.chars, customer.chars_per_minute, customer.words_per_minute) == (6, 60.0, None)


def test_emotion_trend_counts_per_minute_customer_only_but_laughter_for_everyone() -> None:
    t = call(
        u("customer", 1, 3, emotion="ANGRY"),
        u("customer", 59.5, 62, emotion="ANGRY"),  # the minute it starts in
        u("customer", 70, 72, emotion="EMO_UNKNOWN"),
        u("customer", 80, 81, source="sound", event="Laughter", emotion=None),
        u("agent", 100, 103, emotion="HAPPY", event="Laughter"),  # as if the guard let it by
        u(
            "customer",
            125,
            130,
            emotion="SAD",
            **{k: v for k, v in MUSIC.items() if k != "emotion"},
        ),
        duration=130,
    )
    d = call_dynamics(t)
    assert d.minutes == 3
    assert d.emotion_trend == {
        "agent": {"laughter": (0, 1, 0)},
        "customer": {"ANGRY": (2, 0, 0), "laughter": (0, 1, 0)},
    }
    allowed = call_dynamics(t, emotion_speakers=frozenset({"customer", "agent"}))
    assert allowed.emotion_trend["agent"] == {"HAPPY": (0, 1, 0), "laughter": (0, 1, 0)}


def test_temperature_points_peak_final_and_end_weighted_score() -> None:
    t = call(
        u("customer", 0, 3, emotion="ANGRY"),  # w = 0.5: 0 -> 0.5
        u("agent", 5, 9, emotion="ANGRY"),  # not the customer: no evidence
        u("customer", 60, 63, emotion="ANGRY"),  # 0.5 cooled 60 s = 0.25 -> 0.625
        u("customer", 120, 123, source="sound", event="Laughter", emotion=None),
        duration=180,
    )
    temp = call_dynamics(t).temperature
    laughed = 0.3125 + 0.5 * (-1.0 - 0.3125)  # 0.625 cooled 60 s, half the way to -1
    assert [p[0] for p in temp.points] == [3, 63, 123]
    assert [p[1] for p in temp.points] == pytest.approx([0.5, 0.625, laughed])
    assert (temp.peak, temp.peak_at) == (pytest.approx(0.625), 63)
    cooled_57s = 0.5 ** (57 / 60)
    assert temp.final == pytest.approx(laughed * cooled_57s)
    assert temp.per_minute == pytest.approx([0.5 * cooled_57s, 0.625 * cooled_57s, temp.final])
    weights = [0.5 * 0.5 ** ((180 - end) / 60) for end in (3, 63, 123)]
    expected = (weights[0] + weights[1] - weights[2]) / sum(weights)
    assert temp.end_weighted == pytest.approx(expected)
    pleased = call_dynamics(call(u("customer", 0, 3, emotion="HAPPY"), duration=10)).temperature
    assert (pleased.peak, pleased.peak_at) == (0.0, None) and pleased.end_weighted == -0.8


def test_heat_watch_is_exact_between_updates() -> None:
    temp, watch = Temperature(), HeatWatch(0.5)
    temp.feel(1.0, 0.0, 6.0, [watch])  # 0.75 at 6 s
    crossing = 6 + 60 * math.log2(0.75 / 0.5)
    assert watch.seconds_above(temp, crossing - 0.01) == pytest.approx(crossing - 6.01)
    assert watch.seconds_above(temp, crossing + 0.01) == 0.0
    temp.feel(1.0, 10.0, 16.0, [watch])  # still above just before: the run goes on
    assert watch.since == 6.0


def test_the_summary_has_the_dynamics_and_follows_the_compliance_settings() -> None:
    angry_agent = call(u("agent", 0, 3, emotion="ANGRY"), u("customer", 4, 6, emotion="SAD"))
    default = summarize(angry_agent, (), (), (), Counter(), CallsenseConfig())
    assert default["dynamics"]["emotion_trend"] == {"customer": {"SAD": [1]}}
    assert default["dynamics"]["speakers"]["customer"]["talk_s"] == 2.0
    override = CallsenseConfig(
        compliance=ComplianceConfig(agent_emotion=True, agent_emotion_reason="safety study")
    )
    summary = summarize(angry_agent, (), (), (), Counter(), override)
    assert summary["dynamics"]["emotion_trend"]["agent"] == {"ANGRY": [1]}
    off = CallsenseConfig(compliance=ComplianceConfig(emotion=False))
    muted = summarize(angry_agent, (), (), (), Counter(), off)
    assert muted["dynamics"]["emotion_trend"] == {}
    assert muted["dynamics"]["temperature"]["points"] == []


# --- the policy session's numbers are the summary's --------------------------------------------

EVERYTHING = (
    Feature("overtalk", window=1e6),
    Feature("interruptions", window=1e6, speakers=("agent",)),
    Feature("interruptions", window=1e6, speakers=("customer",)),
    Feature("temperature"),
)

utterance = st.tuples(
    st.sampled_from(["customer", "customer", "agent"]),
    st.floats(0.0, 100.0).map(lambda x: round(x, 2)),
    st.sampled_from([0.3, 0.8, 1.0, 1.7, 4.0, 9.0]),
    st.sampled_from(["ANGRY", "NEUTRAL", "HAPPY", "SAD", "EMO_UNKNOWN"]),
    st.sampled_from(["Speech", "Speech", "Speech", "Laughter", "BGM"]),
)


def _one_channel_each(items: list[tuple]) -> list[Utterance]:
    """Drop an utterance that overlaps an earlier one of its channel (one VAD per channel)."""
    kept: list[Utterance] = []
    for speaker, start, length, emotion, event in items:
        new = u(speaker, start, round(start + length, 2), emotion=emotion, event=event)
        if all(k.channel != new.channel or k.end <= start or k.start >= new.end for k in kept):
            kept.append(new)
    return kept


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(items=st.lists(utterance, max_size=30))
def test_the_session_counts_what_the_summary_counts(items: list[tuple]) -> None:
    transcript = call(*_one_channel_each(items), duration=120.0)
    tracker = DynamicsTracker(EVERYTHING)
    values = [0.0, 0.0, 0.0, 0.0]
    for seq, utt in enumerate(transcript.utterances):
        values = tracker.observe(Observation.of(utt, seq))
    d = call_dynamics(transcript)
    made = {name: s.interruptions for name, s in d.speakers.items()}
    assert values[0] == pytest.approx(d.overtalk_s, abs=1e-9)
    assert values[1] == made.get("agent", 0)
    assert values[2] == made.get("customer", 0)
    last = max((p[0] for p in d.temperature.points), default=0.0)
    now = max((x.end for x in transcript.utterances), default=0.0)
    assert last <= now
    points = d.temperature.points
    expected = Temperature(points[-1][1], points[-1][0]).now(now) if points else 0.0
    assert values[3] == pytest.approx(expected, abs=1e-12)


def test_a_replayed_call_fires_on_what_its_summary_reports() -> None:
    """Through the session a call runs in: the rule fires on the interruption the summary
    counts, when the agent's utterance (which ends last) is in."""
    engine = PolicyEngine.from_text(
        "policy: p\nrules:\n  - id: r\n    when: {interruptions: {by: agent, more_than: 0, "
        "within: 1m}}\n    once: true\n    then: [{tag: t}]\n"
    )
    [decision] = replay_transcript(CALL, engine)
    assert decision.at == 12.0 and call_dynamics(CALL).speakers["agent"].interruptions == 1
    session = CallPolicy(engine.open("x"))
    assert [d.rule for utt in CALL.utterances for d in session.feed(utt)] == ["r"]


def test_the_example_in_the_docs_is_this_call() -> None:
    doc = (Path(__file__).resolve().parents[2] / "docs" / "dynamics.md").read_text("utf-8")
    block = re.search(r'```json\n"dynamics": (\{.*?\n\})\n```', doc, re.S)
    assert block is not None
    assert json.loads(block.group(1)) == call_dynamics(CALL).record()
