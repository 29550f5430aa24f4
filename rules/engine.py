"""Run policies over calls: one ``PolicyEngine`` per policy set, one session per live call.

``session.observe(obs)`` takes the call's utterances in the order they end and returns the
decisions each one completes; ``session.close(call_end)`` evaluates ``last:`` windows (they
need the call's end) and returns their decisions. Only audio time is used, never the wall
clock, so replaying a recorded call decides exactly as the live call did.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Sequence
from pathlib import Path

from callsense.core.dynamics import add_interval, measure
from callsense.core.errors import InputError
from callsense.rules.backends import BACKENDS, Matcher, make_matcher
from callsense.rules.compiler import Const, Program, compile_program, fact_of
from callsense.rules.counting import Counter
from callsense.rules.dynamics import DynamicsTracker
from callsense.rules.loader import PolicySet, load_policies, load_policy_texts
from callsense.rules.model import Decision, Evidence, Observation

__all__ = ["BACKENDS", "DEFAULT_BACKEND", "PolicyEngine", "PolicySession"]

DEFAULT_BACKEND = "python"
MAX_PAUSES = 64  # gaps a session remembers (a call with more keeps the latest)
MAX_HELD = 64  # separate skipped spans a hold keeps (older ones: only their length)


class PolicyEngine:
    """Compiled policies plus a matcher backend (``python`` or ``durable``)."""

    def __init__(self, policy_set: PolicySet, *, backend: str = DEFAULT_BACKEND) -> None:
        self.policy_set = policy_set
        self.policy_hash = policy_set.policy_hash
        self.backend = backend
        self.program: Program = compile_program(policy_set.policies)
        self.matcher: Matcher = make_matcher(self.program, backend)
        self._plan = tuple(
            (
                r,
                r.policy_index,
                None if r.scope == Const(True) else r.scope_name,
                r.true_name,
                r.false_name,
                r.on_unknown == "break",
            )
            for r in self.program.rules
        )

    @classmethod
    def load(cls, paths: Sequence[str | Path], *, backend: str = DEFAULT_BACKEND) -> PolicyEngine:
        return cls(load_policies(paths), backend=backend)

    @classmethod
    def from_text(
        cls, text: str, *, file: str = "<policy>", backend: str = DEFAULT_BACKEND
    ) -> PolicyEngine:
        return cls(load_policy_texts([(text, file)]), backend=backend)

    def open(self, call_id: str) -> PolicySession:
        return PolicySession(self, call_id)

    def run(
        self, call_id: str, observations: Iterable[Observation], call_end: float | None = None
    ) -> list[Decision]:
        """All decisions for one whole call (replay, tests)."""
        session = self.open(call_id)
        decisions: list[Decision] = []
        for obs in observations:
            decisions.extend(session.observe(obs))
        decisions.extend(session.close(call_end))
        return decisions

    def close(self) -> None:
        self.matcher.close()

    def __enter__(self) -> PolicyEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class PolicySession:
    """One call's rule state; cheap enough to keep ten thousand alive."""

    __slots__ = (
        "_closed",
        "_counters",
        "_dynamics",
        "_engine",
        "_held",
        "_hold_base",
        "_holds",
        "_late",
        "_max_end",
        "_pauses",
        "_visible_end",
        "call_id",
    )

    def __init__(self, engine: PolicyEngine, call_id: str) -> None:
        self._engine = engine
        self.call_id = call_id
        program = engine.program
        self._counters = [Counter(r) for r in program.rules]
        n = len(program.policies)
        self._visible_end = [0.0] * n
        self._holds = [0.0] * n
        # skipped spans since each policy's last visible utterance, for hold: (a union:
        # music on both channels of a stereo call is one hold, not two)
        self._held: list[list[tuple[float, float]]] = [[] for _ in range(n)]
        self._hold_base = [0.0] * n
        self._dynamics = DynamicsTracker(program.features) if program.features else None
        self._late: dict[int, deque[tuple[bool, Evidence]]] = {
            r.index: deque() for r in program.rules if r.last is not None
        }
        self._max_end = 0.0
        self._pauses: list[tuple[float, float]] = []
        self._closed = False

    def pause(self, start: float, end: float) -> None:
        """The platform marked a gap in the call over [start, end) (a hold, discarded audio,
        a reconnect): streaks of ``on_pause: reset`` policies do not run across it. Time
        based, so an utterance recognised late still counts on its side of the gap."""
        if end > start:
            self._pauses.append((start, end))
            del self._pauses[:-MAX_PAUSES]

    def _reset_across_pauses(self, obs: Observation) -> None:
        program = self._engine.program
        for p in program.policies:
            last = self._visible_end[p.index]
            if p.resets_on_pause and any(
                start <= obs.start and end > last for start, end in self._pauses
            ):
                for rule in program.rules:
                    if rule.policy_index == p.index:
                        self._counters[rule.index].reset()

    def observe(self, obs: Observation) -> list[Decision]:
        """Feed the call's next utterance; returns the decisions it completes."""
        if self._closed:
            raise InputError(f"call {self.call_id}: session already closed")
        engine = self._engine
        program = engine.program
        if self._pauses:
            self._reset_across_pauses(obs)
        gaps = [max(0.0, obs.start - end) for end in self._visible_end]
        features = self._dynamics.observe(obs) if self._dynamics is not None else ()
        held = engine.matcher.match(fact_of(program, obs, gaps, self._holds, features))
        skipped = []
        for p in program.policies:
            i = p.index
            if p.skip_name in held:
                skipped.append(True)
                if obs.end > obs.start:
                    union = self._held[i]
                    add_interval(union, obs.start, obs.end)
                    if len(union) > MAX_HELD:  # the oldest span: kept as its length
                        a, b = union.pop(0)
                        self._hold_base[i] += b - a
                    self._holds[i] = self._hold_base[i] + measure(union)
            else:
                skipped.append(False)
                if obs.end > self._visible_end[i]:
                    self._visible_end[i] = obs.end
                self._holds[i] = 0.0
                self._hold_base[i] = 0.0
                self._held[i].clear()
        if obs.end > self._max_end:
            self._max_end = obs.end
        decisions: list[Decision] = []
        ev: Evidence | None = None
        for rule, p_index, scope_name, true_name, false_name, breaks in engine._plan:
            if skipped[p_index] or (scope_name is not None and scope_name not in held):
                continue
            if rule.first is not None and obs.start >= rule.first:
                continue
            if true_name in held:
                hit = True
            elif false_name in held or breaks:
                hit = False
            else:
                continue  # abstained: neither counts nor breaks
            if ev is None:
                ev = Evidence.of(obs)
            if rule.last is not None:
                late = self._late[rule.index]
                late.append((hit, ev))
                while late and late[0][1].end <= self._max_end - rule.last:
                    late.popleft()
                continue
            evidence = self._counters[rule.index].step(hit, ev, obs.end)
            if evidence is not None:
                self._emit(decisions, rule.index, obs.end, evidence)
        return decisions

    def close(self, call_end: float | None = None) -> list[Decision]:
        """End the call; evaluates ``last:`` rules over the call's final seconds."""
        if self._closed:
            return []
        self._closed = True
        end = self._max_end if call_end is None else call_end
        decisions: list[Decision] = []
        for index, late in self._late.items():
            rule = self._engine.program.rules[index]
            counter = self._counters[index]
            assert rule.last is not None
            for hit, ev in late:
                if ev.end > end - rule.last:
                    evidence = counter.step(hit, ev, ev.end)
                    if evidence is not None:
                        self._emit(decisions, index, ev.end, evidence)
        self._late.clear()
        return decisions

    def _emit(
        self, out: list[Decision], index: int, at: float, evidence: tuple[Evidence, ...]
    ) -> None:
        rule = self._engine.program.rules[index]
        for action, params in rule.actions:
            out.append(
                Decision(
                    call_id=self.call_id,
                    policy=rule.policy,
                    rule=rule.id,
                    action=action,
                    params=dict(params),
                    at=at,
                    evidence=evidence,
                    policy_hash=self._engine.policy_hash,
                )
            )
