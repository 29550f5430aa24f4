"""Warnings for policies that validate but probably do not say what their author meant.

Checks are exact over a small universe of utterances built from the values a rule
mentions (each tag it names plus "something else", known/unknown, each threshold crossed
or not): a *contradictory* rule's condition is true for none of them, an *unreachable*
rule's only matches are skipped by its policy's ``skip:`` list.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from typing import Any

from callsense.core.yamlsource import format_loc
from callsense.rules.compiler import (
    And,
    CompiledRule,
    Eq,
    Flag,
    Gt,
    Guard,
    Node,
    Not,
    Or,
    compile_program,
    kleene,
)
from callsense.rules.loader import PolicySet

__all__ = ["LintWarning", "lint"]

_MAX_UNIVERSE = 50_000


@dataclass(frozen=True, slots=True)
class LintWarning:
    file: str
    line: int | None
    field: str
    message: str

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        return f"{where}: {self.field}: {self.message}"


def _domains(node: Node, out: dict[str, set[Any]]) -> None:
    if isinstance(node, Eq):
        out.setdefault(node.field, {"\0other"}).update(node.values)
    elif isinstance(node, Guard):
        out.setdefault(node.flag, {True, False})
        _domains(node.child, out)
    elif isinstance(node, Flag):
        out.setdefault(node.field, {"t", "f", "u"})
    elif isinstance(node, Gt):  # thresholds now; _universe adds one above them all
        out.setdefault(node.field, set()).add(float(node.value))
    elif isinstance(node, (And, Or)):
        for child in node.children:
            _domains(child, out)
    elif isinstance(node, Not):
        _domains(node.child, out)


def _universe(nodes: list[Node]) -> list[dict[str, Any]] | None:
    domains: dict[str, set[Any]] = {}
    for node in nodes:
        _domains(node, domains)
    for values in domains.values():
        if all(isinstance(v, float) for v in values):
            # each threshold stands for the values up to it (Gt is strict), max + 1 for the rest
            values.add(max(values) + 1.0)
    size = 1
    for values in domains.values():
        size *= len(values)
    if size > _MAX_UNIVERSE:
        return None
    keys = sorted(domains)
    ordered = [sorted(domains[k], key=repr) for k in keys]
    return [dict(zip(keys, combo, strict=True)) for combo in itertools.product(*ordered)]


def _rule_warnings(rule: CompiledRule, skip: Node) -> list[str]:
    universe = _universe([rule.scope, rule.predicate, skip])
    if universe is None:
        return []
    matching = [
        f for f in universe if kleene(rule.scope, f) is True and kleene(rule.predicate, f) is True
    ]
    if not matching:
        return ["contradictory conditions: no utterance can satisfy them, the rule never fires"]
    if all(kleene(skip, f) is True for f in matching):
        return ["unreachable rule: every utterance it matches is skipped by the policy's skip:"]
    return []


def lint(policy_set: PolicySet) -> list[LintWarning]:
    """Warnings for a loaded policy set, each with the file and line to look at."""
    warnings: list[LintWarning] = []
    program = compile_program(policy_set.policies)
    for src, cpolicy in zip(policy_set.sources, program.policies, strict=True):
        if not src.policy.rules:
            warnings.append(
                LintWarning(src.file, src.line("policy"), "rules", "the policy has no rules")
            )
        rules = [r for r in program.rules if r.policy_index == cpolicy.index]
        for i, (rule, crule) in enumerate(zip(src.policy.rules, rules, strict=True)):
            for message in _rule_warnings(crule, cpolicy.skip):
                warnings.append(
                    LintWarning(src.file, src.line("rules", i, "when"), f"rules[{i}].when", message)
                )
            for path, regex in _regexes(rule.when, ("rules", i, "when")):
                if re.compile(regex).search("") is not None:
                    warnings.append(
                        LintWarning(
                            src.file,
                            src.line(*path),
                            format_loc(path),
                            "this regex matches empty text, so it matches every utterance",
                        )
                    )
            if _dynamics_level(rule.when) and not (
                rule.once
                or rule.cooldown is not None
                or rule.when.consecutive is not None
                or rule.when.at_least is not None
            ):
                warnings.append(
                    LintWarning(
                        src.file,
                        src.line("rules", i, "when"),
                        f"rules[{i}].when",
                        "overtalk, interruptions and temperature describe the call so far: the "
                        "rule fires at every utterance while they hold; add once: true or a "
                        "cooldown",
                    )
                )
            if rule.once and rule.cooldown is not None:
                warnings.append(
                    LintWarning(
                        src.file,
                        src.line("rules", i, "cooldown"),
                        f"rules[{i}].cooldown",
                        "cooldown has no effect on a rule with once: true",
                    )
                )
    return warnings


def _dynamics_level(cond: Any) -> bool:
    """Whether the condition tests a level of the call so far (not an utterance's own)."""
    if cond.overtalk is not None or cond.interruptions is not None or cond.temperature is not None:
        return True
    children = [*(cond.all_ or ()), *(cond.any_ or ())]
    if cond.not_ is not None:
        children.append(cond.not_)
    return any(_dynamics_level(c) for c in children)


def _regexes(cond: Any, path: tuple[Any, ...]) -> list[tuple[tuple[Any, ...], str]]:
    found: list[tuple[tuple[Any, ...], str]] = []
    if cond.text is not None and cond.text.regex is not None:
        found.append(((*path, "text", "regex"), cond.text.regex))
    for key, attr in (("all", "all_"), ("any", "any_")):
        for j, child in enumerate(getattr(cond, attr) or ()):
            found.extend(_regexes(child, (*path, key, j)))
    if cond.not_ is not None:
        found.extend(_regexes(cond.not_, (*path, "not")))
    return found


_NEEDS_EMOTION = ("emotion", "temperature")  # the temperature is made of emotions


def emotion_uses(policy_set: PolicySet) -> list[str]:
    """``file:line: rules[i]...: ...`` for every rule condition that needs an emotion.

    With speech-emotion recognition switched off (``compliance.emotion: false``) such
    rules could never fire; callers refuse them at start-up and in ``policy check``.
    """
    problems: list[str] = []

    def walk(node: Any, path: tuple[Any, ...], source: Any, rule_id: str) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key in _NEEDS_EMOTION:
                    where = ".".join(str(p) if isinstance(p, str) else f"[{p}]" for p in path)
                    line = source.line(*path, key)
                    problems.append(
                        f"{source.file}:{line}: {where.replace('.[', '[')}.{key}: rule "
                        f"{rule_id!r} needs speech-emotion recognition, which the config "
                        "switches off (compliance.emotion: false); remove the condition or "
                        "turn emotion recognition on"
                    )
                else:
                    walk(value, (*path, key), source, rule_id)
        elif isinstance(node, list):
            for i, item in enumerate(node):
                walk(item, (*path, i), source, rule_id)

    for source in policy_set.sources:
        data = source.located.data or {}
        for i, rule in enumerate(data.get("rules") or []):
            if isinstance(rule, dict):
                walk(rule.get("when"), ("rules", i, "when"), source, str(rule.get("id")))
    return problems
