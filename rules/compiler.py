"""Turn validated policies into a ``Program``: named conditions both backends evaluate.

Each utterance becomes one flat *fact* (a dict of strings, numbers and flags). Rules test
facts in three-valued (Kleene) logic: an emotion the model could not tell (``EMO_UNKNOWN``,
below ``min_confidence``, or a sound segment) is *unknown*, so ``emotion: ANGRY`` is
neither true nor false for it and the rule abstains. Per rule the program has a scope
condition (the top-level ``speaker``), a *true* condition and a *false* condition; a rule
abstains when neither holds. Text and confidence tests are computed in Python into flags
(durable-rules' regex engine does not match non-ASCII text such as Chinese).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from callsense.core.vocab import ABSTAIN_EMOTIONS, ABSTAIN_EVENTS
from callsense.rules.schema import Condition, Policy, When

__all__ = [
    "ALWAYS",
    "NEVER",
    "And",
    "CompiledPolicy",
    "CompiledRule",
    "Const",
    "Eq",
    "Feature",
    "Flag",
    "Gt",
    "Guard",
    "Node",
    "Not",
    "Or",
    "Program",
    "compile_program",
    "durable_false",
    "durable_true",
    "fact_of",
    "kleene",
]


# --- the condition tree -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Eq:
    """``fact[field]`` is one of ``values`` (always true or false)."""

    field: str
    values: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Guard:
    """Unknown unless the boolean ``flag`` fact is true; then the child decides."""

    flag: str
    child: Node


@dataclass(frozen=True, slots=True)
class Flag:
    """A three-valued fact computed in Python: ``"t"``, ``"f"`` or ``"u"`` (unknown)."""

    field: str


@dataclass(frozen=True, slots=True)
class Gt:
    field: str
    value: float


@dataclass(frozen=True, slots=True)
class And:
    children: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Or:
    children: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Not:
    child: Node


@dataclass(frozen=True, slots=True)
class Const:
    value: bool


Node = Eq | Guard | Flag | Gt | And | Or | Not | Const


def kleene(node: Node, fact: dict[str, Any]) -> bool | None:
    """Evaluate ``node`` on ``fact``: True, False or None (unknown)."""
    if isinstance(node, Eq):
        return fact[node.field] in node.values
    if isinstance(node, Guard):
        return kleene(node.child, fact) if fact[node.flag] else None
    if isinstance(node, Flag):
        v = fact[node.field]
        return True if v == "t" else False if v == "f" else None
    if isinstance(node, Gt):
        return fact[node.field] > node.value
    if isinstance(node, And):
        result: bool | None = True
        for child in node.children:
            v = kleene(child, fact)
            if v is False:
                return False
            if v is None:
                result = None
        return result
    if isinstance(node, Or):
        result = False
        for child in node.children:
            v = kleene(child, fact)
            if v is True:
                return True
            if v is None:
                result = None
        return result
    if isinstance(node, Not):
        v = kleene(node.child, fact)
        return None if v is None else not v
    return node.value


# --- durable-rules condition JSON ------------------------------------------------------

ALWAYS: dict[str, Any] = {"one": 1}  # every fact carries one=1
NEVER = None


def _all(parts: list[dict[str, Any] | None]) -> dict[str, Any] | None:
    if any(p is NEVER for p in parts):
        return NEVER
    kept = [p for p in parts if p != ALWAYS]
    if not kept:
        return ALWAYS
    return kept[0] if len(kept) == 1 else {"$and": kept}


def _any(parts: list[dict[str, Any] | None]) -> dict[str, Any] | None:
    if any(p == ALWAYS for p in parts):
        return ALWAYS
    kept = [p for p in parts if p is not NEVER]
    if not kept:
        return NEVER
    return kept[0] if len(kept) == 1 else {"$or": kept}


def durable_true(node: Node) -> dict[str, Any] | None:
    """A durable-rules expression that holds exactly when ``node`` is True (None: never)."""
    if isinstance(node, Eq):
        return _any([{node.field: v} for v in node.values])
    if isinstance(node, Guard):
        return _all([{node.flag: True}, durable_true(node.child)])
    if isinstance(node, Flag):
        return {node.field: "t"}
    if isinstance(node, Gt):
        return {"$gt": {node.field: node.value}}
    if isinstance(node, And):
        return _all([durable_true(c) for c in node.children])
    if isinstance(node, Or):
        return _any([durable_true(c) for c in node.children])
    if isinstance(node, Not):
        return durable_false(node.child)
    return ALWAYS if node.value else NEVER


def durable_false(node: Node) -> dict[str, Any] | None:
    """A durable-rules expression that holds exactly when ``node`` is False (None: never)."""
    if isinstance(node, Eq):
        return _all([{"$neq": {node.field: v}} for v in node.values])
    if isinstance(node, Guard):
        return _all([{node.flag: True}, durable_false(node.child)])
    if isinstance(node, Flag):
        return {node.field: "f"}
    if isinstance(node, Gt):
        return {"$lte": {node.field: node.value}}
    if isinstance(node, And):
        return _any([durable_false(c) for c in node.children])
    if isinstance(node, Or):
        return _all([durable_false(c) for c in node.children])
    if isinstance(node, Not):
        return durable_true(node.child)
    return NEVER if node.value else ALWAYS


# --- policies to a program -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CompiledRule:
    """A rule ready to run: its conditions, how it counts, what it does."""

    index: int
    policy_index: int
    policy: str
    id: str
    scope: Node
    predicate: Node
    counter: str  # "consecutive" | "at_least"
    need: int  # N of consecutive or M of at_least
    of_last: int | None
    within: float | None
    first: float | None
    last: float | None
    once: bool
    cooldown: float | None
    on_unknown: str
    actions: tuple[tuple[str, dict[str, Any]], ...]

    @property
    def scope_name(self) -> str:
        return f"r{self.index}s"

    @property
    def true_name(self) -> str:
        return f"r{self.index}t"

    @property
    def false_name(self) -> str:
        return f"r{self.index}f"


@dataclass(frozen=True, slots=True)
class CompiledPolicy:
    index: int
    name: str
    skip: Node
    min_lang: float | None
    min_emotion: float | None
    min_event: float | None
    resets_on_pause: bool = True

    @property
    def skip_name(self) -> str:
        return f"s{self.index}"


FlagFn = Callable[[Any], str]


@dataclass(frozen=True, slots=True)
class Feature:
    """A number about the call so far that the session computes at each observation
    (``rules.dynamics``) and puts into the fact as ``d<index>``:

    ``overtalk``       seconds of overtalk within the last ``window``
    ``interruptions``  interruptions by ``speakers`` (None: anyone) within the last ``window``
    ``temperature``    the customer's temperature now
    ``hot_for``        seconds the temperature has been above ``threshold`` without a break
    """

    kind: str
    window: float | None = None
    speakers: tuple[str, ...] | None = None
    threshold: float | None = None


@dataclass(frozen=True, slots=True)
class Program:
    """Everything a backend needs: policies, rules, the Python-computed flags, and the
    call-dynamics features the session computes for them."""

    policies: tuple[CompiledPolicy, ...]
    rules: tuple[CompiledRule, ...]
    flags: tuple[tuple[str, FlagFn], ...]
    features: tuple[Feature, ...] = ()


class _Builder:
    def __init__(self) -> None:
        self.flags: list[tuple[str, FlagFn]] = []
        self.features: list[Feature] = []

    def flag(self, fn: FlagFn) -> Flag:
        name = f"x{len(self.flags)}"
        self.flags.append((name, fn))
        return Flag(name)

    def feature(self, feature: Feature) -> str:
        """The fact field of a feature; conditions that need the same number share it."""
        if feature not in self.features:
            self.features.append(feature)
        return f"d{self.features.index(feature)}"

    def condition(self, cond: Condition, p: int, *, with_speaker: bool = True) -> Node:
        parts: list[Node] = []
        if with_speaker and cond.speaker is not None:
            parts.append(Eq("speaker", cond.speaker))
        if cond.source is not None:
            parts.append(Eq("source", (cond.source,)))
        if cond.emotion is not None:
            parts.append(Guard(f"ek{p}", Eq("emotion", cond.emotion)))
        if cond.event is not None:
            parts.append(Guard(f"vk{p}", Eq("event", cond.event)))
        if cond.language is not None:
            parts.append(Guard(f"lk{p}", Eq("lang", cond.language)))
        if cond.confidence is not None:
            for attr in ("lang", "emotion", "event"):
                floor = getattr(cond.confidence, attr)
                if floor is not None:
                    parts.append(self.flag(_confidence_flag(f"{attr}_confidence", floor)))
        if cond.text is not None:
            if cond.text.regex is not None:
                pattern = re.compile(cond.text.regex, re.IGNORECASE)
            else:
                pattern = re.compile(
                    "|".join(re.escape(k) for k in cond.text.keywords or ()), re.IGNORECASE
                )
            parts.append(self.flag(_text_flag(pattern)))
        if cond.intent is not None:
            parts.append(Eq("intent", cond.intent))
        if cond.silence is not None:
            parts.append(Gt(f"gap{p}", cond.silence))
        if cond.hold is not None:
            parts.append(Gt(f"hold{p}", cond.hold))
        if cond.overtalk is not None:
            name = self.feature(Feature("overtalk", window=cond.overtalk.within))
            parts.append(Gt(name, cond.overtalk.longer_than))
        if cond.interruptions is not None:
            spec = cond.interruptions
            by = tuple(sorted(spec.by)) if spec.by is not None else None
            name = self.feature(Feature("interruptions", window=spec.within, speakers=by))
            parts.append(Gt(name, float(spec.more_than)))
        if cond.temperature is not None:
            above, seconds = cond.temperature.above, cond.temperature.for_
            if seconds is None:
                parts.append(Gt(self.feature(Feature("temperature")), above))
            else:
                parts.append(Gt(self.feature(Feature("hot_for", threshold=above)), seconds))
        if cond.all_ is not None:
            parts.append(And(tuple(self.condition(c, p) for c in cond.all_)))
        if cond.any_ is not None:
            parts.append(Or(tuple(self.condition(c, p) for c in cond.any_)))
        if cond.not_ is not None:
            parts.append(Not(self.condition(cond.not_, p)))
        if not parts:
            return Const(True)
        return parts[0] if len(parts) == 1 else And(tuple(parts))


def _confidence_flag(attr: str, floor: float) -> FlagFn:
    def flag(obs: Any) -> str:
        value = getattr(obs, attr)
        if value is None:
            return "u"
        return "t" if value >= floor else "f"

    return flag


def _text_flag(pattern: re.Pattern[str]) -> FlagFn:
    def flag(obs: Any) -> str:
        return "t" if pattern.search(obs.text) else "f"

    return flag


def _counting(when: When) -> tuple[str, int, int | None]:
    if when.at_least is not None:
        return "at_least", when.at_least, when.of_last
    return "consecutive", when.consecutive or 1, None


def compile_program(policies: list[Policy]) -> Program:
    """Compile policies (in load order) into one program; rule indexes run across files."""
    builder = _Builder()
    compiled_policies: list[CompiledPolicy] = []
    compiled_rules: list[CompiledRule] = []
    for p_index, policy in enumerate(policies):
        skip = Or(tuple(builder.condition(c, p_index) for c in policy.skip))
        compiled_policies.append(
            CompiledPolicy(
                index=p_index,
                name=policy.policy,
                skip=skip if policy.skip else Const(False),
                min_lang=policy.min_confidence.lang,
                min_emotion=policy.min_confidence.emotion,
                min_event=policy.min_confidence.event,
                resets_on_pause=policy.on_pause == "reset",
            )
        )
        for rule in policy.rules:
            when = rule.when
            counter, need, of_last = _counting(when)
            compiled_rules.append(
                CompiledRule(
                    index=len(compiled_rules),
                    policy_index=p_index,
                    policy=policy.policy,
                    id=rule.id,
                    scope=Eq("speaker", when.speaker) if when.speaker else Const(True),
                    predicate=builder.condition(when, p_index, with_speaker=False),
                    counter=counter,
                    need=need,
                    of_last=of_last,
                    within=when.within,
                    first=when.first,
                    last=when.last,
                    once=rule.once,
                    cooldown=rule.cooldown,
                    on_unknown=rule.on_unknown,
                    actions=tuple(a.decision() for a in rule.then),
                )
            )
    return Program(
        tuple(compiled_policies),
        tuple(compiled_rules),
        tuple(builder.flags),
        tuple(builder.features),
    )


def fact_of(
    program: Program,
    obs: Any,
    gaps: list[float],
    holds: list[float],
    features: Sequence[float] = (),
) -> dict[str, Any]:
    """The flat fact both backends test for one observation (per-policy keys carry an index;
    ``features``: the values of ``program.features``, in order)."""
    fact: dict[str, Any] = {
        "one": 1,
        "speaker": obs.speaker,
        "source": obs.source,
        "emotion": obs.emotion or "",
        "event": obs.event or "",
        "lang": obs.lang or "",
        "intent": obs.intent or "",
    }
    speech = obs.source == "speech"
    for p in program.policies:
        i = p.index
        fact[f"ek{i}"] = (
            speech
            and obs.emotion is not None
            and obs.emotion not in ABSTAIN_EMOTIONS
            and not _below(obs.emotion_confidence, p.min_emotion)
        )
        fact[f"vk{i}"] = (
            obs.event is not None
            and obs.event not in ABSTAIN_EVENTS
            and not _below(obs.event_confidence, p.min_event)
        )
        fact[f"lk{i}"] = obs.lang is not None and not _below(obs.lang_confidence, p.min_lang)
        fact[f"gap{i}"] = gaps[i]
        fact[f"hold{i}"] = holds[i]
    for name, fn in program.flags:
        fact[name] = fn(obs)
    for k, value in enumerate(features):
        fact[f"d{k}"] = value
    return fact


def _below(value: float | None, floor: float | None) -> bool:
    return floor is not None and value is not None and value < floor
