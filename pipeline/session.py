"""One call, whatever brought it: utterances in, typed events out.

Every road a call can take is a thin driver of a ``CallSession``:

    callsense analyze / the API's audio jobs   recording -> transcriber -> session
    a transcript posted to the API             utterances -> session
    a live stream (pipeline.live)              frames -> streaming VAD -> recognizer -> session
    the Ray archive                            transcribe actors -> analyze actors -> session
    policy replays and diffs                   stored utterances -> session (rules only)

The session is the one place where an utterance passes the privacy guard (the
emotion-compliance gate, then PII redaction) before any stage, file, store or webhook sees
it, and where the audit block (policy hash, config hash, model) joins the result. It feeds
the stages (``pipeline.stages``) and turns what they add into events: ``UtteranceEvent``,
``DecisionEvent``, ``ReplyEvent``, ``ErrorEvent`` and, last, ``EndEvent`` with the call's
``CallResult``. ``feed`` returns a turn's events; sinks given to ``open`` receive each event
as well (files, the calls store, the outbox), so a driver only moves data in.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from callsense.pipeline.config import CallsenseConfig
from callsense.pipeline.events import (
    CallEvent,
    DecisionEvent,
    EndEvent,
    ErrorEvent,
    ReplyEvent,
    UtteranceEvent,
)
from callsense.pipeline.model import CallTranscript, Gap, Utterance
from callsense.pipeline.nlu import IntentClassifier
from callsense.pipeline.policy_stage import PolicyStage
from callsense.pipeline.stages import (
    CallStage,
    NluStage,
    RulesStage,
    SpokenReply,
    Stage,
    StageError,
    TtsStage,
    Turn,
)
from callsense.pipeline.summary import CallResult, summarize
from callsense.pipeline.tts import FallbackTts
from callsense.rules.engine import PolicyEngine
from callsense.rules.model import Decision

__all__ = [
    "CallFlow",
    "CallSession",
    "EventSink",
    "replay_transcript",
]

log = logging.getLogger(__name__)


class EventSink(Protocol):
    """Where a call's events go as they happen (files, the calls store, the outbox)."""

    def __call__(self, event: CallEvent) -> None: ...


def _unguarded(utterance: Utterance) -> Utterance:
    return utterance


@dataclass(frozen=True, slots=True)
class CallFlow:
    """The loaded flow: stages, privacy guard and audit, shared by every call it opens."""

    stages: tuple[Stage, ...]
    cfg: CallsenseConfig
    guard: Callable[[Utterance], Utterance]
    # what produced the decisions (policy hash, config hash, model): in every summary
    audit: Mapping[str, Any] = field(default_factory=dict)

    def open(
        self,
        call_id: str,
        *,
        channels: int | None = None,
        source: str | None = None,
        sinks: Sequence[EventSink] = (),
    ) -> CallSession:
        return CallSession(self, call_id, channels=channels, source=source, sinks=sinks)

    def run(self, transcript: CallTranscript, *, sinks: Sequence[EventSink] = ()) -> CallResult:
        """A whole call whose utterances are known (recording, posted transcript, replay)."""
        session = self.open(
            transcript.call_id, channels=transcript.channels, source=transcript.source, sinks=sinks
        )
        session.start()
        for gap in transcript.gaps:  # time based: the rules place them among the utterances
            session.gap(gap)
        for utterance in transcript.utterances:
            session.feed(utterance)
        session.close(transcript.duration)
        assert session.result is not None
        return session.result

    def with_rules(self, engine: PolicyEngine, policies: Sequence[str]) -> CallFlow:
        """This flow with its rules stage running ``engine`` (a stored policy set)."""
        rules = RulesStage(PolicyStage(engine))
        stages = tuple(rules if isinstance(s, RulesStage) else s for s in self.stages)
        audit = {**self.audit, "policy_hash": engine.policy_hash, "policies": list(policies)}
        return replace(self, stages=stages, audit=audit)

    def without_tts(self) -> CallFlow:
        """Without reply audio (the API's jobs; live calls speak replies themselves)."""
        return replace(self, stages=tuple(s for s in self.stages if not isinstance(s, TtsStage)))

    @property
    def tts(self) -> FallbackTts | None:
        return next((s.tts for s in self.stages if isinstance(s, TtsStage)), None)

    @property
    def intents(self) -> IntentClassifier | None:
        return next((s.classifier for s in self.stages if isinstance(s, NluStage)), None)


class CallSession:
    """One call going through the flow; ``start``, ``feed`` utterances in the order they
    end, ``close``. Not thread-safe: one driver feeds it."""

    def __init__(
        self,
        flow: CallFlow,
        call_id: str,
        *,
        channels: int | None = None,
        source: str | None = None,
        sinks: Sequence[EventSink] = (),
    ) -> None:
        self.flow = flow
        self.call_id = call_id
        self.channels = channels
        self.source = source
        self.sinks = tuple(sinks)
        self.stages: list[CallStage] = [stage.open(call_id) for stage in flow.stages]
        self.utterances: list[Utterance] = []
        self.decisions: list[Decision] = []
        self.replies: list[SpokenReply] = []
        self.errors: list[StageError] = []
        self.gaps: list[Gap] = []
        self.intents: Counter[str] = Counter()
        self.duration: float | None = None
        self.result: CallResult | None = None

    def start(self) -> list[CallEvent]:
        """Open the stages (the dialogue may greet)."""
        turn = Turn(utterance=None, at=0.0)
        for stage in self.stages:
            turn = self._guarded(stage, "start", turn, stage.start)
        return self._emit(self._events(turn, None))

    def feed(self, utterance: Utterance, *, closed_at: float | None = None) -> list[CallEvent]:
        """One utterance through the guard and the stages; ``closed_at``: when a live
        call's VAD closed it (a recording's: its end)."""
        utterance = self.flow.guard(utterance)
        self.utterances.append(utterance)
        closed = utterance.end if closed_at is None else closed_at
        turn = Turn(utterance=utterance, at=utterance.end)
        for stage in self.stages:
            turn = self._guarded(stage, "process", turn, stage.process)
        if turn.intent is not None:
            self.intents[turn.intent.name] += 1
        events: list[CallEvent] = [UtteranceEvent(utterance, closed)]
        return self._emit(events + self._events(turn, closed))

    def gap(self, gap: Gap) -> None:
        """The platform marked call time as not streamed (kept in the transcript; the rules
        decide per policy whether a streak runs across it)."""
        self.gaps.append(gap)
        for stage in self.stages:
            stage.pause(gap)

    def error(self, stage: str, exc: BaseException, at: float | None) -> ErrorEvent:
        """A failure outside the stages (a live call's VAD or recognizer): kept in the
        summary like a stage's, never ending the call."""
        log.warning("call %s: %s failed: %s", self.call_id, stage, type(exc).__name__)
        error = StageError(stage, type(exc).__name__, str(exc), at)
        self.errors.append(error)
        event = ErrorEvent(error)
        self._emit([event])
        return event

    def spoke(self, reply: SpokenReply) -> None:
        """A reply a live call spoke after the turn (its audio joins the result)."""
        for i in range(len(self.replies) - 1, -1, -1):
            if self.replies[i].reply is reply.reply:
                self.replies[i] = reply
                return

    def close(self, duration: float | None) -> list[CallEvent]:
        """The call ended: ``last:`` policy windows decide, then the result is made. Returns
        the end's decisions, replies and errors, then the ``EndEvent``; idempotent."""
        if self.result is not None:
            return [EndEvent(self.result)]
        return [*self.end(duration), self.finish()]

    def end(self, duration: float | None) -> list[CallEvent]:
        """The closing turn alone (a live call speaks its replies before ``finish``)."""
        self.duration = duration
        turn = Turn(utterance=None, at=duration or 0.0)
        for stage in self.stages:
            turn = self._guarded(stage, "close", turn, lambda t, s=stage: s.close(t, duration))
        return self._emit(self._events(turn, None))

    def finish(self) -> EndEvent:
        """The call's result, summary and audit block; the last event."""
        transcript = CallTranscript(
            call_id=self.call_id,
            utterances=tuple(self.utterances),
            duration=self.duration,
            channels=self.channels,
            source=self.source,
            gaps=tuple(self.gaps),
        )
        decisions, replies, errors = tuple(self.decisions), tuple(self.replies), tuple(self.errors)
        summary = summarize(transcript, decisions, replies, errors, self.intents, self.flow.cfg)
        summary["audit"] = dict(self.flow.audit)
        self.result = CallResult(transcript, decisions, replies, errors, summary)
        end = EndEvent(self.result)
        self._emit([end])
        return end

    # -- internals -------------------------------------------------------------------------

    def _events(self, turn: Turn, closed_at: float | None) -> list[CallEvent]:
        self.decisions.extend(turn.decisions)
        self.replies.extend(turn.replies)
        self.errors.extend(turn.errors)
        events: list[CallEvent] = [DecisionEvent(d, closed_at) for d in turn.decisions]
        events += [ReplyEvent(r) for r in turn.replies]
        events += [ErrorEvent(e) for e in turn.errors]
        return events

    def _emit(self, events: list[CallEvent]) -> list[CallEvent]:
        for event in events:
            for sink in self.sinks:
                sink(event)
        return events

    def _guarded(self, stage: CallStage, step: str, turn: Turn, fn: Callable[[Turn], Turn]) -> Turn:
        try:
            return fn(turn)
        except Exception as exc:
            log.warning(
                "call %s: stage %s.%s failed: %s", self.call_id, stage.name, step,
                type(exc).__name__,
            )  # fmt: skip
            err = StageError(stage.name, type(exc).__name__, str(exc), turn.at)
            return replace(turn, errors=(*turn.errors, err))


def replay_transcript(
    transcript: CallTranscript,
    engine: PolicyEngine,
    *,
    intents: IntentClassifier | None = None,
    cfg: CallsenseConfig | None = None,
) -> list[Decision]:
    """All decisions for a stored call, through the session a live call runs: the NLU (when
    ``intents`` is given, so ``intent:`` conditions fire in a replay too), then the rules.
    Stored calls passed the privacy guard when they were made, so a replay does not guard."""
    stages: Iterable[Stage] = [NluStage(intents)] if intents is not None else []
    flow = CallFlow(
        (*stages, RulesStage(PolicyStage(engine))),
        cfg or CallsenseConfig(),
        guard=_unguarded,
        audit={"policy_hash": engine.policy_hash},
    )
    return list(flow.run(transcript).decisions)
