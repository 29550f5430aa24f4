"""Two ways to test a fact against a program's conditions, behind one interface.

``DurableMatcher`` asserts the fact into one durable-rules ruleset and collects the rules
it fires; ``PythonMatcher`` evaluates the same conditions in plain Python. Both return the
names of what held: ``s<p>`` (policy p skips it), ``r<i>s`` (in rule i's scope), ``r<i>t`` /
``r<i>f`` (rule i's condition is true / false; neither means the rule abstains).

durable-rules 2.0.28 is driven through its C extension directly, never through
``durable.engine.Host``: the Host's dispatcher threads race with synchronous matching
(and crash when states are deleted meanwhile). Every fact goes to one state (``sid`` "0")
and is retracted right after matching, so the 1024-states cap and state deletion never
come into play; per-call counting lives in ``rules.counting``, not in durable-rules, because
its sequence rules also match non-consecutive events.
"""

from __future__ import annotations

import itertools
import json
import threading
from collections.abc import Callable
from typing import Any, Protocol

import durable_rules_engine as _dre

from callsense.rules.compiler import (
    NEVER,
    And,
    Const,
    Eq,
    Flag,
    Gt,
    Guard,
    Node,
    Not,
    Or,
    Program,
    durable_false,
    durable_true,
)

__all__ = ["BACKENDS", "DurableMatcher", "Matcher", "PythonMatcher", "make_matcher"]

Fact = dict[str, Any]


class Matcher(Protocol):
    """Tests one fact; returns the names of the conditions that held."""

    def match(self, fact: Fact) -> set[str]: ...

    def close(self) -> None: ...


Kleene = Callable[[Fact], bool | None]


def _closure(node: Node) -> Kleene:
    """Compile a condition tree into nested closures (faster than walking the tree)."""
    if isinstance(node, Eq):
        field, values = node.field, frozenset(node.values)
        return lambda f: f[field] in values
    if isinstance(node, Guard):
        flag, child = node.flag, _closure(node.child)
        return lambda f: child(f) if f[flag] else None
    if isinstance(node, Flag):
        name = node.field
        return lambda f: True if f[name] == "t" else (False if f[name] == "f" else None)
    if isinstance(node, Gt):
        field, value = node.field, node.value
        return lambda f: f[field] > value
    if isinstance(node, And):
        kids = [_closure(c) for c in node.children]

        def all_of(f: Fact) -> bool | None:
            result: bool | None = True
            for kid in kids:
                v = kid(f)
                if v is False:
                    return False
                if v is None:
                    result = None
            return result

        return all_of
    if isinstance(node, Or):
        kids = [_closure(c) for c in node.children]

        def any_of(f: Fact) -> bool | None:
            result: bool | None = False
            for kid in kids:
                v = kid(f)
                if v is True:
                    return True
                if v is None:
                    result = None
            return result

        return any_of
    if isinstance(node, Not):
        child = _closure(node.child)

        def negate(f: Fact) -> bool | None:
            v = child(f)
            return None if v is None else not v

        return negate
    value = node.value
    return lambda f: value


class PythonMatcher:
    """Plain-Python three-valued evaluation: the reference backend, and the fast one."""

    def __init__(self, program: Program) -> None:
        self._skips = [(p.index, p.skip_name, _closure(p.skip)) for p in program.policies]
        by_policy: dict[int, list[tuple[str, Kleene | None, str, str, Kleene]]] = {}
        for r in program.rules:
            scope = None if r.scope == Const(True) else _closure(r.scope)
            by_policy.setdefault(r.policy_index, []).append(
                (r.scope_name, scope, r.true_name, r.false_name, _closure(r.predicate))
            )
        self._rules = by_policy

    def match(self, fact: Fact) -> set[str]:
        held: set[str] = set()
        for p_index, skip_name, skip in self._skips:
            if skip(fact) is True:
                held.add(skip_name)
                continue
            for scope_name, scope, true_name, false_name, predicate in self._rules.get(p_index, ()):
                if scope is not None:
                    if scope(fact) is not True:
                        continue
                    held.add(scope_name)
                v = predicate(fact)
                if v is True:
                    held.add(true_name)
                elif v is False:
                    held.add(false_name)
        return held

    def close(self) -> None:
        return None


_ruleset_names = itertools.count()


class DurableMatcher:
    """The program compiled onto one durable-rules ruleset; one fact in, fired rules out."""

    def __init__(self, program: Program) -> None:
        definition: dict[str, Any] = {}
        for p in program.policies:
            expr = durable_true(p.skip)
            if expr is not NEVER:
                definition[p.skip_name] = {"all": [{"m": expr}]}
        for r in program.rules:
            named = [
                (r.true_name, durable_true(r.predicate)),
                (r.false_name, durable_false(r.predicate)),
            ]
            if r.scope != Const(True):
                named.append((r.scope_name, durable_true(r.scope)))
            for name, expr in named:
                if expr is not NEVER:
                    definition[name] = {"all": [{"m": expr}]}
        self.definition = definition
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._handle: int | None = None
        if definition:
            name = f"callsense{next(_ruleset_names)}"
            self._handle = _dre.create_ruleset(name, json.dumps(definition, ensure_ascii=False))

    def match(self, fact: Fact) -> set[str]:
        held: set[str] = set()
        handle = self._handle
        if handle is None:
            return held
        fact["sid"] = "0"
        with self._lock:
            fact["id"] = next(self._ids)  # durable-rules drops a fact whose id it has seen
            text = json.dumps(fact, ensure_ascii=False)
            code, state = _dre.assert_fact(handle, text)
            if code == 0:
                result = _dre.start_action_for_state(handle, state)
                message = result[1] if result else None
                while message:
                    # message is '{"<rule name>":{...}}'; the name is all we need
                    held.add(message[2 : message.index('"', 2)])
                    message = _dre.complete_and_start_action(handle, state)
            _dre.retract_fact(handle, text)
        return held

    def state(self) -> dict[str, Any] | None:
        """durable-rules' own record of the state every fact goes to (``sid`` "0"): None
        before the first fact, after ``close`` and for a program without conditions."""
        handle = self._handle
        if handle is None:
            return None
        with self._lock:
            try:
                text = _dre.get_state(handle, "0")
            except _dre.error as exc:
                if "error code: 309" not in str(exc):  # 309: no fact has created it yet
                    raise
                return None
        state: dict[str, Any] = json.loads(text)
        return state

    def close(self) -> None:
        # The ruleset is not deleted: durable-rules' native memory handling is fragile (see
        # tests/rules/test_durable_defects.py); one ruleset per engine is a bounded cost.
        self._handle = None


BACKENDS = ("python", "durable")


def make_matcher(program: Program, backend: str) -> Matcher:
    if backend == "python":
        return PythonMatcher(program)
    if backend == "durable":
        return DurableMatcher(program)
    raise ValueError(f"unknown rules engine {backend!r}; one of {', '.join(BACKENDS)}")
