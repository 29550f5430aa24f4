"""Payload templates: YAML bodies whose string leaves are Jinja, validated at start-up.

The structure lives in YAML, not in a Jinja text that happens to print JSON, so a template
cannot emit broken JSON or forget to escape a quote. A string leaf that is one whole
``{{ expression }}`` keeps the expression's type (a list, an int priority, the params
dict); any other string leaf renders to text. Jinja runs sandboxed with ``StrictUndefined``
so a typo in a template, or a variable an endpoint forgot, fails when the config is loaded,
not when the first escalation is sent.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jinja2 import StrictUndefined, TemplateError
from jinja2.sandbox import SandboxedEnvironment
from pydantic import BaseModel, ConfigDict, Field, field_validator

from callsense.core.errors import ConfigError
from callsense.core.yamlsource import validate

__all__ = [
    "BUILTIN_DIR",
    "PRIORITIES",
    "PayloadTemplate",
    "TemplateSpec",
    "builtin_names",
    "load_template",
    "sample_decision",
]

BUILTIN_DIR = Path(__file__).resolve().parent
PRIORITIES = ("low", "normal", "high", "urgent")
_WHOLE_EXPR = re.compile(r"^\s*\{\{(.*)\}\}\s*$", re.DOTALL)
_ENV = SandboxedEnvironment(undefined=StrictUndefined, autoescape=False)


class TemplateSpec(BaseModel):
    """One template file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    description: str = ""
    content_type: str = "application/json"
    priority_map: dict[str, Any] = Field(default_factory=lambda: {p: p for p in PRIORITIES})
    vars: dict[str, Any] = Field(default_factory=dict)
    body: Any

    @field_validator("priority_map")
    @classmethod
    def _all_priorities(cls, value: dict[str, Any]) -> dict[str, Any]:
        missing = [p for p in PRIORITIES if p not in value]
        unknown = [p for p in value if p not in PRIORITIES]
        if missing or unknown:
            raise ValueError(
                f"must map exactly {list(PRIORITIES)} (missing {missing}, unknown {unknown})"
            )
        return value

    @field_validator("content_type")
    @classmethod
    def _json_only(cls, value: str) -> str:
        if value.split(";")[0].strip() != "application/json":
            raise ValueError("only application/json bodies are supported")
        return value


def _compile(node: Any, path: str) -> Any:
    """Compile every string leaf once; errors name the leaf's path in the body."""
    if isinstance(node, Mapping):
        return {k: _compile(v, f"{path}.{k}") for k, v in node.items()}
    if isinstance(node, list):
        return [_compile(v, f"{path}[{i}]") for i, v in enumerate(node)]
    if isinstance(node, str) and "{" in node:
        try:
            whole = _WHOLE_EXPR.match(node)
            if whole and "{{" not in whole.group(1):
                return ("expr", _ENV.compile_expression(whole.group(1), undefined_to_none=False))
            return ("text", _ENV.from_string(node))
        except TemplateError as exc:
            raise ValueError(f"{path}: Jinja syntax error: {exc}") from None
    return ("const", node)


def _render(node: Any, ctx: Mapping[str, Any]) -> Any:
    if isinstance(node, dict):
        return {k: _render(v, ctx) for k, v in node.items()}
    if isinstance(node, list):
        return [_render(v, ctx) for v in node]
    kind, value = node
    if kind == "expr":
        result = value(**ctx)
        if hasattr(result, "_undefined_name"):  # StrictUndefined only raises when used
            str(result)
        return result
    if kind == "text":
        return value.render(ctx)
    return value


@dataclass(frozen=True, slots=True)
class PayloadTemplate:
    """A compiled template: ``render`` turns a decision into the JSON-able body."""

    spec: TemplateSpec
    source: str
    _compiled: Any

    def render(
        self,
        decision: Mapping[str, Any],
        *,
        webhook_id: str,
        decision_id: str,
        enqueued_at: str,
        vars: Mapping[str, Any] | None = None,
    ) -> Any:
        params = decision.get("params") or {}
        priority = params.get("priority", "normal") if isinstance(params, Mapping) else "normal"
        ctx = {
            "decision": decision,
            "event_type": f"callsense.decision.{decision.get('action', 'unknown')}",
            "webhook_id": webhook_id,
            "decision_id": decision_id,
            "enqueued_at": enqueued_at,
            "priority": self.spec.priority_map.get(str(priority), self.spec.priority_map["normal"]),
            "reason": params.get("reason", "") if isinstance(params, Mapping) else "",
            "vars": {**self.spec.vars, **(vars or {})},
        }
        return _render(self._compiled, ctx)

    def check(self, vars: Mapping[str, Any] | None = None) -> None:
        """Render a sample escalation so missing variables fail at start-up (ValueError)."""
        try:
            self.render(
                sample_decision(),
                webhook_id="msg_check",
                decision_id="dec_check",
                enqueued_at="2024-01-01T00:00:00Z",
                vars=vars,
            )
        except TemplateError as exc:
            raise ValueError(f"template {self.spec.name!r} ({self.source}): {exc}") from None


def sample_decision() -> dict[str, Any]:
    """A representative escalate decision used to test-render templates."""
    return {
        "call_id": "call-0001",
        "policy": "default",
        "rule": "angry_customer",
        "action": "escalate",
        "params": {"priority": "high", "reason": "customer angry twice"},
        "at": 12.5,
        "evidence": [],
        "policy_hash": "0" * 16,
    }


def builtin_names() -> list[str]:
    return sorted(p.stem for p in BUILTIN_DIR.glob("*.yaml"))


def load_template(name_or_path: str) -> PayloadTemplate:
    """A built-in template by name (``generic``, ``zendesk``...) or a YAML file by path."""
    if "/" not in name_or_path and not name_or_path.endswith((".yaml", ".yml")):
        path = BUILTIN_DIR / f"{name_or_path}.yaml"
        if not path.is_file():
            raise ConfigError(
                f"unknown template {name_or_path!r}; built-in: {', '.join(builtin_names())} "
                "(or give a path to a .yaml template)"
            )
    else:
        path = Path(name_or_path)
    spec = validate(TemplateSpec, path)
    try:
        compiled = _compile(spec.body, "body")
    except ValueError as exc:
        raise ConfigError(str(exc), file=str(path)) from None
    return PayloadTemplate(spec=spec, source=str(path), _compiled=compiled)
