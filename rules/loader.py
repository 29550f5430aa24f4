"""Load one or several policy files together, all or nothing.

Every problem in every file is collected and raised as one ``ConfigError`` whose lines read
``file:line: field: message``; a rule id used twice (in one file or across files) is one of
them. ``policy_hash`` is the sha256 of the files' bytes in load order, so a decision can
be traced to the exact policy text that made it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from callsense.core.errors import ConfigError
from callsense.core.yamlsource import Located, load_yaml_text, validate_data
from callsense.rules.schema import Policy

__all__ = ["PolicySet", "PolicySource", "load_policies", "load_policy_texts"]


@dataclass(frozen=True, slots=True)
class PolicySource:
    """One validated policy file with the line numbers of its YAML (for lint messages)."""

    policy: Policy
    file: str
    located: Located
    text: str

    def line(self, *path: str | int) -> int | None:
        return self.located.line_of(path)


@dataclass(frozen=True, slots=True)
class PolicySet:
    sources: tuple[PolicySource, ...]
    policy_hash: str

    @property
    def policies(self) -> list[Policy]:
        return [s.policy for s in self.sources]


def _read(path: str | Path) -> str:
    p = Path(path)
    try:
        return p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError("file not found", file=str(path)) from None
    except IsADirectoryError:
        raise ConfigError("is a directory, expected a policy YAML file", file=str(path)) from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"not UTF-8 text ({exc.reason})", file=str(path)) from None
    except OSError as exc:
        raise ConfigError(f"cannot read: {exc.strerror}", file=str(path)) from None


def load_policies(paths: Sequence[str | Path]) -> PolicySet:
    """Read and validate policy files; ``ConfigError`` lists every problem found."""
    if not paths:
        raise ConfigError("no policy files given")
    texts: list[tuple[str, str]] = []
    problems: list[str] = []
    for path in paths:
        try:
            texts.append((_read(path), str(path)))
        except ConfigError as err:
            problems.extend(err.problems)
    if problems:
        raise ConfigError(problems[0], problems=problems)
    return load_policy_texts(texts)


def load_policy_texts(texts: Sequence[tuple[str, str]]) -> PolicySet:
    """Validate ``(text, file name)`` pairs as one policy set."""
    sources: list[PolicySource] = []
    problems: list[str] = []
    for text, file in texts:
        try:
            located = load_yaml_text(text, file)
            if not isinstance(located.data, dict):
                raise ConfigError(
                    "a policy file is a mapping with policy: and rules:", file=file, line=1
                )
            policy = validate_data(Policy, located)
        except ConfigError as err:
            problems.extend(err.problems)
            continue
        sources.append(PolicySource(policy, file, located, text))
    problems.extend(_duplicates(sources))
    if problems:
        raise ConfigError(problems[0], problems=problems)
    digest = hashlib.sha256()
    for text, _ in texts:
        digest.update(text.encode("utf-8"))
    return PolicySet(tuple(sources), digest.hexdigest())


def _duplicates(sources: list[PolicySource]) -> list[str]:
    problems: list[str] = []
    rule_seen: dict[str, str] = {}
    policy_seen: dict[str, str] = {}
    for src in sources:
        here = f"{src.file}:{src.line('policy')}"
        name = src.policy.policy
        if name in policy_seen:
            problems.append(
                f"{here}: policy: policy name {name!r} is already used at {policy_seen[name]}"
            )
        else:
            policy_seen[name] = here
        for i, rule in enumerate(src.policy.rules):
            where = f"{src.file}:{src.line('rules', i, 'id')}"
            if rule.id in rule_seen:
                problems.append(
                    f"{where}: rules[{i}].id: rule id {rule.id!r} is already used at "
                    f"{rule_seen[rule.id]}; rule ids are unique across all loaded policies"
                )
            else:
                rule_seen[rule.id] = where
    return problems
