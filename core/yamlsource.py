"""Load YAML so that every error can name its file, line and field.

PyYAML's composer keeps each node's position; we build plain Python data from the node
tree ourselves so that duplicate keys are rejected (PyYAML silently keeps the last one)
and every value's path maps to its line. ``validate`` runs a pydantic model over the data
and turns each pydantic error into ``file:line: field.path: message (got value)``.

Numbers must be finite: pydantic reads ``.inf``, ``.nan`` and ``1e999999`` (a string to
YAML, infinity to ``float()``) as valid floats, and a limit of infinity is no limit, so
``validate_data`` rejects a non-finite float anywhere in the validated model.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from callsense.core.errors import ConfigError

__all__ = ["Located", "format_loc", "load_yaml", "load_yaml_text", "validate", "validate_data"]

M = TypeVar("M", bound=BaseModel)
PathKey = tuple[str | int, ...]


@dataclass(slots=True)
class Located:
    """Parsed YAML data plus the line (1-based) of every key and item in it."""

    data: Any
    file: str
    lines: dict[PathKey, int] = field(default_factory=dict)
    nodes: int = 0

    def line_of(self, loc: PathKey) -> int | None:
        """Line of ``loc`` or of its nearest ancestor that has one."""
        loc = tuple(loc)
        while loc:
            if loc in self.lines:
                return self.lines[loc]
            loc = loc[:-1]
        return self.lines.get((), None)


# A config or policy has at most a few thousand values; more means an alias bomb.
MAX_NODES = 200_000


def _build(node: yaml.Node, path: PathKey, out: Located) -> Any:
    out.nodes += 1
    if out.nodes > MAX_NODES:
        raise ConfigError(
            f"document too large (more than {MAX_NODES} values; YAML aliases expanding?)",
            file=out.file,
            line=node.start_mark.line + 1,
        )
    out.lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        result: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                raise ConfigError(
                    "YAML merge keys (<<) are not supported; write the keys out",
                    file=out.file,
                    line=key_node.start_mark.line + 1,
                )
            key = _build(key_node, (*path, "<key>"), out)
            if isinstance(key, (dict, list)):
                raise ConfigError(
                    "a mapping key must be a plain value",
                    file=out.file,
                    line=key_node.start_mark.line + 1,
                )
            if key in result:
                first = out.lines.get((*path, key))
                raise ConfigError(
                    f"duplicate key {key!r} (first defined on line {first})",
                    file=out.file,
                    line=key_node.start_mark.line + 1,
                    field=format_loc(path) or None,
                )
            out.lines[(*path, key)] = key_node.start_mark.line + 1
            result[key] = _build(value_node, (*path, key), out)
        out.lines.pop((*path, "<key>"), None)
        return result
    if isinstance(node, yaml.SequenceNode):
        items = []
        for i, item in enumerate(node.value):
            items.append(_build(item, (*path, i), out))
        return items
    constructor = yaml.SafeLoader("")  # a fresh constructor resolves one scalar's type
    try:
        return constructor.construct_object(node, deep=True)
    except (yaml.YAMLError, ValueError, KeyError, AttributeError, TypeError) as exc:
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0][:120]
        raise ConfigError(
            f"cannot read this value ({node.tag}): {problem}",
            file=out.file,
            line=node.start_mark.line + 1,
            field=format_loc(path) or None,
        ) from None
    finally:
        constructor.dispose()


def load_yaml_text(text: str, file: str = "<input>") -> Located:
    """Parse YAML text; raise ``ConfigError`` with the line on any syntax problem."""
    out = Located(data=None, file=file)
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.reader.ReaderError as exc:
        line = text.count("\n", 0, exc.position) + 1
        raise ConfigError(
            f"not valid YAML: character {exc.character!r} is not allowed", file=file, line=line
        ) from None
    except RecursionError:
        raise ConfigError("nested too deeply", file=file, line=_deep_line(text)) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        raise ConfigError(
            f"not valid YAML: {exc.problem or exc.context}", file=file, line=line
        ) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"not valid YAML: {exc}", file=file) from None
    if node is None:
        out.data = None
        return out
    try:
        out.data = _build(node, (), out)
    except RecursionError:
        raise ConfigError("nested too deeply", file=file, line=_deep_line(text)) from None
    return out


def _deep_line(text: str, limit: int = 100) -> int:
    """Line where flow brackets first nest ``limit`` deep (line 1 if it is indentation)."""
    depth = 0
    line = 1
    for ch in text:
        if ch == "\n":
            line += 1
        elif ch in "[{":
            depth += 1
            if depth >= limit:
                return line
        elif ch in "]}":
            depth -= 1
    return 1


def load_yaml(path: str | Path) -> Located:
    """Read and parse a YAML file; a missing or unreadable file is a ``ConfigError`` too."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError("file not found", file=str(path)) from None
    except IsADirectoryError:
        raise ConfigError("is a directory, expected a YAML file", file=str(path)) from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"not UTF-8 text ({exc.reason})", file=str(path)) from None
    except OSError as exc:
        raise ConfigError(f"cannot read: {exc.strerror}", file=str(path)) from None
    return load_yaml_text(text, file=str(path))


def format_loc(loc: PathKey) -> str:
    """``("rules", 0, "when", "consecutive")`` -> ``rules[0].when.consecutive``."""
    parts: list[str] = []
    for item in loc:
        if isinstance(item, int):
            parts.append(f"[{item}]")
        else:
            parts.append(("." if parts else "") + str(item))
    return "".join(parts)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def validate_data(model: type[M], src: Located, *, context: Mapping[str, Any] | None = None) -> M:
    """Validate parsed YAML against ``model``; every problem becomes one ``file:line`` line."""
    try:
        result = model.model_validate(src.data if src.data is not None else {}, context=context)
    except ValidationError as exc:
        problems = []
        first_line: int | None = None
        for err in exc.errors(include_url=False):
            # pydantic puts the union/tag member name in loc; keep only real data keys
            loc = _data_loc(src.data, tuple(err["loc"]))
            line = src.line_of(loc)
            if first_line is None:
                first_line = line
            where = f"{src.file}:{line}" if line else src.file
            msg = err["msg"].removeprefix("Value error, ")
            scalar = not isinstance(err.get("input"), dict | list)
            if err["type"] not in ("missing", "extra_forbidden") and "input" in err and scalar:
                msg = f"{msg} (got {_short(err['input'])})"
            if err["type"] == "extra_forbidden":
                msg = "unknown field; check its spelling and indentation"
            field_name = format_loc(loc)
            problems.append(f"{where}: {field_name}: {msg}" if field_name else f"{where}: {msg}")
        raise ConfigError(problems[0], file=src.file, line=first_line, problems=problems) from None
    _check_finite(result, src)
    return result


def _check_finite(model: BaseModel, src: Located) -> None:
    """``ConfigError`` naming each inf/nan with its line: such a limit would be no limit."""
    found: list[tuple[int, str]] = []
    for full_loc, value in _non_finite(model, ()):
        loc = _data_loc(src.data, full_loc)
        line = src.line_of(loc)
        where = f"{src.file}:{line}" if line else src.file
        message = f"{where}: {format_loc(loc)}: must be a finite number (got {value})"
        found.append((line or 0, message))
    if found:
        found.sort(key=lambda item: item[0])
        problems = [text for _, text in found]
        raise ConfigError(problems[0], file=src.file, line=found[0][0] or None, problems=problems)


def _non_finite(value: Any, loc: PathKey) -> Iterator[tuple[PathKey, float]]:
    """Every inf/nan float in a validated model, with its path."""
    if isinstance(value, float):
        if not math.isfinite(value):
            yield loc, value
    elif isinstance(value, BaseModel):
        for name in type(value).model_fields:
            yield from _non_finite(getattr(value, name), (*loc, name))
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from _non_finite(item, (*loc, key))
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            yield from _non_finite(item, (*loc, i))


def _data_loc(data: Any, full_loc: tuple[Any, ...]) -> PathKey:
    """The parts of a pydantic error path that are real keys/indices in ``data``.

    pydantic inserts union member names mid-path (``engines[1].piper.x``); those are not
    in the data and are dropped. A last part that is missing is kept: it names the field
    the user has to add.
    """
    kept: list[str | int] = []
    node = data
    for i, part in enumerate(full_loc):
        in_dict = isinstance(node, dict) and part in node
        in_list = isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)
        if in_dict or in_list:
            kept.append(part)
            node = node[part]
        elif i == len(full_loc) - 1 and isinstance(node, dict) and isinstance(part, str):
            kept.append(part)
    return tuple(kept)


def validate(model: type[M], path: str | Path, *, context: Mapping[str, Any] | None = None) -> M:
    """Load ``path`` and validate it as ``model`` (``ConfigError`` on any problem)."""
    return validate_data(model, load_yaml(path), context=context)
