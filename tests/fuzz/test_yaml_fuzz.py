"""Malformed policies and configs: always a ``ConfigError`` that names ``fuzz.yaml:LINE``.

Hypothesis mutates the shipped policy (``configs/policies/default.yaml``) and a full main
config (the defaults, dumped) as text and as data. Every outcome must be either a valid
file (some mutations are harmless) or a ``ConfigError`` each of whose lines starts with
``fuzz.yaml:<line>:``; any other exception fails. Loader bugs found this way have
reproducers at the end (fixed, kept as regression tests).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from callsense.core.errors import ConfigError
from callsense.core.yamlsource import load_yaml_text, validate_data
from callsense.pipeline.config import CallsenseConfig
from callsense.rules.loader import load_policy_texts
from tests.conftest import ROOT
from tests.fuzz.conftest import FuzzReport

FILE = "fuzz.yaml"
POLICY_SEED = (ROOT / "configs" / "policies" / "default.yaml").read_text(encoding="utf-8")
CONFIG_SEED = yaml.safe_dump(
    CallsenseConfig().model_dump(mode="json"), sort_keys=False, allow_unicode=True
)
EXAMPLES = 60
_PROBLEM_RE = re.compile(rf"^{re.escape(FILE)}:\d+: ")


def load_policy(text: str) -> object:
    return load_policy_texts([(text, FILE)])


def load_config(text: str) -> object:
    return validate_data(CallsenseConfig, load_yaml_text(text, FILE))


# --- mutations ------------------------------------------------------------------------------

TRICKY_SCALARS = [
    "", "~", "null", "true", "no", "yes", "on", "0", "-1", "3.5", "1e309", "-.inf", ".nan",
    "0x1F", "0o17", "2024-01-01", "12:30:00", "[]", "{}", "[a, b]", "{a: 1}", "'quoted'",
    '"dq\\tx"', "|", ">", "&anchor", "*nothing", "- item", "a: b", "'unterminated", '"open',
    "{unclosed", "[unclosed", "@at", "`tick", "%pct", "ANGRY", "angry", "Speech", "customer",
    "agent", "BGM", "high", "3s", "0s", "-5s", "1 fortnight",
]  # fmt: skip
BAD_DURATIONS = [
    "0s", "-1s", "30", "30 sec", "1.5.5s", "s", "", "1e3s", "2 m", "ms", "1h30m", "P1D",
    "9999999999999999999999h", "true", "[30s]", "{s: 30}", "0.0ms", "5 minutes",
]  # fmt: skip
GARBAGE = [*":{}[],&*#?|-<>=!%@`'\"\\ \t\nA1", "  ", "\n  ", ": ", "- ", "---", "..."]
_VALUE_RE = re.compile(r"(?<=: )[^\s,{}\[\]#][^,{}\[\]#\n]*")

scalars = st.one_of(
    st.sampled_from(TRICKY_SCALARS),
    st.integers(-(10**12), 10**12).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.text(max_size=12).map(lambda s: json.dumps(s)),
    st.text(st.characters(codec="utf-8", exclude_categories=("Cc", "Cs")), max_size=12),
)


def _lines(data: st.DataObject, text: str) -> tuple[list[str], int]:
    lines = text.splitlines()
    return lines, data.draw(st.integers(0, len(lines) - 1), label="line")


def drop_lines(data: st.DataObject, text: str) -> str:
    for _ in range(data.draw(st.integers(1, 3))):
        lines, i = _lines(data, text)
        del lines[i]
        text = "\n".join(lines) + "\n"
    return text


def duplicate_line(data: st.DataObject, text: str) -> str:
    lines, i = _lines(data, text)
    j = data.draw(st.integers(0, len(lines)))
    lines.insert(j, lines[i])
    return "\n".join(lines) + "\n"


def bad_indent(data: st.DataObject, text: str) -> str:
    lines, i = _lines(data, text)
    stripped = lines[i].lstrip(" ")
    indent = len(lines[i]) - len(stripped)
    lines[i] = " " * data.draw(st.integers(0, 10).filter(lambda n: n != indent)) + stripped
    return "\n".join(lines) + "\n"


def wrong_scalar(data: st.DataObject, text: str) -> str:
    matches = list(_VALUE_RE.finditer(text))
    for _ in range(data.draw(st.integers(1, 3))):
        m = data.draw(st.sampled_from(matches), label="value")
        text = text[: m.start()] + data.draw(scalars, label="scalar") + text[m.end() :]
        matches = list(_VALUE_RE.finditer(text)) or matches
        if not list(_VALUE_RE.finditer(text)):
            break
    return text


def bad_duration(data: st.DataObject, text: str) -> str:
    """A cooldown/within/first/last that is not a duration, added where the schema reads one."""
    value = data.draw(st.one_of(st.sampled_from(BAD_DURATIONS), scalars), label="duration")
    rendered = json.dumps(value) if data.draw(st.booleans()) else value
    where = data.draw(st.sampled_from(["cooldown", "within", "first", "last"]))
    if where == "cooldown":
        return text.replace("    once: true\n", f"    once: true\n    cooldown: {rendered}\n", 1)
    return text.replace("consecutive: 3}", f"consecutive: 3, {where}: {rendered}}}", 1)


TAGS = [
    "!!str", "!!int", "!!float", "!!bool", "!!null", "!!binary", "!!timestamp", "!!set",
    "!!omap", "!!seq", "!!map", "!foo", "!!python/object:os.system", "!<tag:x.org,1:y>",
]  # fmt: skip


def tagged(data: st.DataObject, text: str) -> str:
    """A YAML tag, standard or unknown, in front of a value."""
    m = data.draw(st.sampled_from(list(_VALUE_RE.finditer(text))), label="value")
    return text[: m.start()] + data.draw(st.sampled_from(TAGS)) + " " + text[m.start() :]


def garbage(data: st.DataObject, text: str) -> str:
    for _ in range(data.draw(st.integers(1, 4))):
        pos = data.draw(st.integers(0, len(text)), label="pos")
        junk = "".join(data.draw(st.lists(st.sampled_from(GARBAGE), min_size=1, max_size=4)))
        text = text[:pos] + junk + text[pos:]
    return text


# Values for structural mutations: wrong types of every kind YAML can express.
plain_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**6), 10**6),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=10),
)
wrong_values = st.recursive(
    plain_values,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=6,
)


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(node, dict):
        for k, v in node.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += _paths(v, (*prefix, i))
    return out


def structural(data: st.DataObject, text: str) -> str:
    """Parse, then drop keys / swap values for wrong types / add unknown keys; dump again."""
    tree = yaml.safe_load(text)
    for _ in range(data.draw(st.integers(1, 3))):
        paths = [p for p in _paths(tree) if p]
        if not paths:
            break
        path = data.draw(st.sampled_from(paths), label="path")
        parent = tree
        for key in path[:-1]:
            parent = parent[key]
        action = data.draw(st.sampled_from(["drop", "replace", "add"]))
        if action == "drop":
            del parent[path[-1]]
        elif action == "replace":
            parent[path[-1]] = data.draw(wrong_values, label="value")
        elif isinstance(parent, dict):
            parent[data.draw(st.text(min_size=1, max_size=8), label="key")] = data.draw(
                wrong_values
            )
        else:
            parent.append(data.draw(wrong_values))
    return yaml.safe_dump(tree, sort_keys=data.draw(st.booleans()), allow_unicode=True)


MUTATIONS: dict[str, Callable[[st.DataObject, str], str]] = {
    "drop-keys": drop_lines,
    "duplicate-keys": duplicate_line,
    "bad-indentation": bad_indent,
    "random-scalars": wrong_scalar,
    "bad-durations": bad_duration,
    "garbage": garbage,
    "wrong-types": structural,
    "tags": tagged,
}
CONFIG_MUTATIONS = [k for k in MUTATIONS if k != "bad-durations"]


def _outcome(load: Callable[[str], object], text: str) -> str | None:
    """None if the property holds for ``text``, else what went wrong."""
    try:
        load(text)
    except ConfigError as err:
        bad = [p for p in err.problems if not _PROBLEM_RE.match(p)]
        if bad:
            return f"ConfigError without {FILE}:LINE: {bad[0]!r}"
        return None
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


def _fuzz(
    fuzz_report: FuzzReport, target: str, seed: str, load: Callable[[str], object], kind: str
) -> None:
    tally = {"tried": 0, "passed": 0}
    mutate = MUTATIONS[kind]

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        database=None,
    )
    @given(data=st.data())
    def run(data: st.DataObject) -> None:
        text = mutate(data, seed)
        tally["tried"] += 1
        problem = _outcome(load, text)
        if problem is None:
            tally["passed"] += 1
        note = f"tried {tally['tried']}, passed {tally['passed']}"
        assert problem is None, f"{target} {kind}: {problem}\n({note})\n--- input ---\n{text}"

    try:
        run()
    finally:
        line = fuzz_report.add(f"{target}/{kind}", tally["tried"], tally["passed"])
    assert tally["tried"] == tally["passed"], line


@pytest.mark.parametrize("kind", list(MUTATIONS))
def test_malformed_policies(kind: str, fuzz_report: FuzzReport) -> None:
    _fuzz(fuzz_report, "yaml/policy", POLICY_SEED, load_policy, kind)


@pytest.mark.parametrize("kind", CONFIG_MUTATIONS)
def test_malformed_main_config(kind: str, fuzz_report: FuzzReport) -> None:
    _fuzz(fuzz_report, "yaml/config", CONFIG_SEED, load_config, kind)


def test_seeds_are_valid() -> None:
    """The mutations start from files that load: every error above is the mutation's doing."""
    load_policy(POLICY_SEED)
    load_config(CONFIG_SEED)


# --- once-known loader bugs: reproducers that must keep passing --------------------------------

_DEEP = 1100  # just past Python's default recursion limit of 1000
KNOWN_BUGS = {
    # core/yamlsource._build constructs scalars outside any error handling
    "unknown-local-tag": "policy: !foo default\n",
    "unknown-python-tag": "policy: !!python/object:os.system ls\n",
    "bad-int-tag": "policy: x\nrules: !!int abc\n",
    "bad-float-tag": "policy: x\nrules: !!float abc\n",
    "bad-bool-tag": "policy: x\nrules: !!bool maybe\n",
    "bad-timestamp-tag": "policy: x\nrules: !!timestamp zz\n",
    "int-over-4300-digits": POLICY_SEED.replace("consecutive: 3", "consecutive: " + "9" * 5000),
    # PyYAML's composer and _build recurse per nesting level
    "deep-nesting": "policy: x\nrules: " + "[" * _DEEP + "]" * _DEEP + "\n",
    # rules/schema.TextMatch catches re.error only
    "regex-recursion": POLICY_SEED.replace(
        "event: Laughter}", "text: {regex: '" + "(" * 1200 + ")" * 1200 + "'}}"
    ),
    "regex-repeat-overflow": POLICY_SEED.replace(
        "event: Laughter}", "text: {regex: 'a{99999999999}'}}"
    ),
    # yaml.reader.ReaderError carries a position, not a mark: the message has no line
    "control-character": POLICY_SEED.replace("ignore music", "ignore\x00music"),
}


@pytest.mark.parametrize("name", list(KNOWN_BUGS))
def test_former_loader_bug(name: str, fuzz_report: FuzzReport) -> None:
    problem = _outcome(load_policy, KNOWN_BUGS[name])
    fuzz_report.add(f"yaml/former-bug/{name}", 1, int(problem is None))
    assert problem is None, problem


def test_alias_bomb_is_refused_fast(tmp_path: Path, fuzz_report: FuzzReport) -> None:
    levels = ["a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    levels += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 7)]
    path = tmp_path / FILE
    path.write_text("\n".join(levels) + "\n", encoding="utf-8")
    code = (
        "import sys\nfrom callsense.core.errors import ConfigError\n"
        "from callsense.rules.loader import load_policies\n"
        "try:\n    load_policies([sys.argv[1]])\nexcept ConfigError as e:\n    print(e)\n"
    )
    try:
        proc = subprocess.run(
            [sys.executable, "-c", code, str(path)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=4,
        )
        ok = proc.returncode == 0 and proc.stdout.startswith(str(path))
        detail = proc.stdout + proc.stderr
    except subprocess.TimeoutExpired:
        ok, detail = False, "still expanding aliases after 4 s"
    fuzz_report.add("yaml/former-bug/alias-bomb", 1, int(ok))
    assert ok, detail
