"""The call session: every road's one place for the privacy guard, the stages, the events,
the sinks and the audit block."""

from __future__ import annotations

from callsense.connectors.appconfig import AppConfig
from callsense.pipeline.analyze import build_flow
from callsense.pipeline.events import (
    CallEvent,
    DecisionEvent,
    EndEvent,
    ReplyEvent,
    UtteranceEvent,
)
from callsense.pipeline.model import CallTranscript, TagConfidence, Utterance
from callsense.pipeline.session import replay_transcript
from callsense.pipeline.stages import RulesStage


def _utt(i: int, speaker: str, emotion: str, text: str) -> Utterance:
    start = 2.0 * i
    return Utterance(
        call_id="s1", channel=0 if speaker == "customer" else 1, speaker=speaker,  # type: ignore[arg-type]
        start=start, end=start + 1.5, source="speech", lang="en", emotion=emotion,
        event="Speech", text=text, raw=f"<|en|><|{emotion}|><|Speech|><|withitn|>{text}",
        confidence=TagConfidence(0.9, 0.9, 0.9),
    )  # fmt: skip


CALL = CallTranscript(
    call_id="s1",
    utterances=(
        _utt(0, "agent", "ANGRY", "hello"),
        _utt(1, "customer", "ANGRY", "my card is 4111 1111 1111 1111"),
        _utt(2, "customer", "ANGRY", "this is wrong"),
        _utt(3, "customer", "ANGRY", "I want a manager"),
    ),
    duration=9.0,
    channels=2,
)


def test_a_posted_call_is_guarded_decided_and_audited_in_the_session() -> None:
    flow = build_flow(AppConfig(), with_tts=False)
    seen: list[CallEvent] = []
    result = flow.run(CALL, sinks=(seen.append,))
    stored = result.transcript.utterances
    # the guard ran before anything else: no agent emotion, no card number anywhere
    assert stored[0].emotion is None and stored[0].confidence.emotion is None
    assert all("4111" not in u.text and "4111" not in u.raw for u in stored)
    assert "[CARD]" in stored[1].text
    # the events a sink saw, in order: each utterance (guarded), its decisions, the end last
    utterances = [e.utterance for e in seen if isinstance(e, UtteranceEvent)]
    assert utterances == list(stored)
    escalations = [e for e in seen if isinstance(e, DecisionEvent)]
    assert [e.decision.action for e in escalations] == ["escalate"]
    assert escalations[0].closed_at == stored[3].end  # decided by the third angry turn
    assert seen.index(escalations[0]) > seen.index(next(
        e for e in seen if isinstance(e, UtteranceEvent) and e.utterance == stored[3]
    ))  # fmt: skip
    assert any(isinstance(e, ReplyEvent) for e in seen)  # the dialogue answered
    assert isinstance(seen[-1], EndEvent) and seen[-1].result is result
    audit = result.summary["audit"]
    assert audit["policy_hash"] and audit["config_hash"] and audit["model"]
    assert result.summary["emotions"] == {"customer:ANGRY": 3}


def test_a_replay_of_the_stored_call_decides_as_the_call_did() -> None:
    flow = build_flow(AppConfig(), with_tts=False)
    result = flow.run(CALL)
    rules = next(s for s in flow.stages if isinstance(s, RulesStage))
    replayed = replay_transcript(result.transcript, rules.policies.engine)
    assert [d.to_dict() for d in replayed] == [d.to_dict() for d in result.decisions]
