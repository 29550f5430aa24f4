"""Per-call counters: how a rule's matching utterances add up to a firing.

A counter sees, in the order they end, only the utterances its rule looks at (in scope, not
skipped) as *hit* (condition true) or *miss* (false); abstentions never reach it unless
the rule says ``on_unknown: break`` (then they arrive as misses). Its memory is bounded by
the rule (N entries at most), so a long call costs no more than a short one.
"""

from __future__ import annotations

from collections import deque

from callsense.rules.compiler import CompiledRule
from callsense.rules.model import Evidence

__all__ = ["Counter"]


class Counter:
    """State of one rule in one call: the current streak or window, once and cooldown."""

    __slots__ = ("buf", "fired", "last_at", "rule")

    def __init__(self, rule: CompiledRule) -> None:
        self.rule = rule
        self.buf: deque = deque(maxlen=rule.of_last or rule.need)
        self.fired = False
        self.last_at: float | None = None

    def reset(self) -> None:
        """Forget the current streak or window (a pause broke it); once and cooldown stay."""
        self.buf.clear()

    def step(self, hit: bool, ev: Evidence, at: float) -> tuple[Evidence, ...] | None:
        """Feed one hit or miss completed at audio time ``at``; the evidence if the rule fires."""
        rule = self.rule
        if rule.once and self.fired:
            return None
        buf = self.buf
        within = rule.within
        if rule.of_last is None:
            if not hit:
                if rule.counter == "consecutive":
                    buf.clear()
                return None
            buf.append(ev)
            if within is not None:
                while buf and at - buf[0].start > within:
                    buf.popleft()
            if len(buf) < rule.need:
                return None
            evidence = tuple(buf)
        else:
            buf.append((hit, ev))
            if not hit:
                return None
            evidence = tuple(e for h, e in buf if h and (within is None or at - e.start <= within))
            if len(evidence) < rule.need:
                return None
        cooldown = rule.cooldown
        if cooldown is not None and self.last_at is not None and at - self.last_at < cooldown:
            return None  # suppressed: the counter keeps its state and may fire after the cooldown
        self.fired = True
        self.last_at = at
        buf.clear()
        return evidence
