"""``/v1/policies``: read, validate, store, test and backtest escalation policies.

Bodies are policy YAML as sent (``application/yaml``, ``text/plain``) or JSON wrapping it;
errors come back as problem details whose ``problems`` read
``policies/NAME.yaml:LINE: field: message`` like ``callsense policy check`` prints.
Names are ``[A-Za-z0-9_-]{1,64}``: anything else (``..``, a slash) is a 400, never a path.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from callsense.connectors.auth import changes_nothing
from callsense.connectors.policy_store import PolicyDoc, policy_file_label
from callsense.connectors.routers.common import (
    PROBLEM_RESPONSES,
    Deleted,
    Problem,
    RuntimeDep,
    read_body,
)
from callsense.connectors.runtime import Runtime
from callsense.core.errors import ConfigError, InputError
from callsense.core.yamlsource import load_yaml_text
from callsense.pipeline.session import replay_transcript
from callsense.rules.engine import PolicyEngine
from callsense.rules.loader import load_policy_texts
from callsense.rules.model import Decision
from callsense.rules.testing import run_test_file

__all__ = ["router"]

router = APIRouter(prefix="/v1/policies", tags=["policies"], responses=PROBLEM_RESPONSES)

_TEXT_LIMIT = 1024 * 1024
_YAML_TYPES = ("application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml", "text/plain")


class PolicyInfo(BaseModel):
    name: str
    source: str = Field(description="config (a configured file) or stored (PUT here)")
    active: bool = Field(description="part of the set calls run when they name no policy")
    file: str


class PolicyOut(PolicyInfo):
    text: str
    rules: list[str]
    policy_hash: str


class PolicyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str = Field(max_length=_TEXT_LIMIT)
    active: bool = True


class Validation(BaseModel):
    valid: bool
    problems: list[str]
    rules: list[str] = []


class PolicyTestIn(BaseModel):
    """Test cases (``rules.testing`` YAML, without ``policies:``) and optionally a draft of
    the policy to test instead of the stored one."""

    model_config = ConfigDict(extra="forbid")

    tests: str = Field(max_length=_TEXT_LIMIT)
    policy: str | None = Field(None, max_length=_TEXT_LIMIT)


class CaseOut(BaseModel):
    name: str
    line: int | None
    passed: bool
    diff: list[str]


class PolicyTestReport(BaseModel):
    passed: int
    failed: int
    cases: list[CaseOut]


class PolicyRef(BaseModel):
    """A policy by ``name`` (stored or configured) or by its YAML ``text``."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(None, pattern=r"^[A-Za-z0-9_-]{1,64}$")
    text: str | None = Field(None, max_length=_TEXT_LIMIT)

    @model_validator(mode="after")
    def _one(self) -> PolicyRef:
        if (self.name is None) == (self.text is None):
            raise ValueError("give exactly one of name or text")
        return self


class DiffIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    old: PolicyRef
    new: PolicyRef
    limit: int = Field(200, ge=1, le=10_000, description="newest stored calls to replay")


class DecisionBrief(BaseModel):
    rule: str
    action: str
    at: float
    params: dict[str, Any]


class CallDiff(BaseModel):
    call_id: str
    removed: list[DecisionBrief]
    added: list[DecisionBrief]


class DiffReport(BaseModel):
    calls_checked: int
    calls_changed: int
    changed: list[CallDiff]


# -- helpers --------------------------------------------------------------------------------


def _name(runtime: Runtime, name: str) -> str:
    try:
        return runtime.policies.check_name(name)
    except InputError as exc:
        raise Problem(400, "Bad Request", str(exc)) from None


def _config_problem(err: ConfigError, title: str = "Invalid policy") -> Problem:
    return Problem(422, title, err.problems[0], problems=list(err.problems))


async def _text_body(request: Request) -> tuple[str, dict[str, Any]]:
    """The YAML text of a body (raw, or JSON ``{"text": ...}``) and the JSON's other keys."""
    body = await read_body(request, _TEXT_LIMIT)
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype == "application/json":
        try:
            data = json.loads(body)
        except ValueError:
            raise Problem(400, "Bad Request", "the body is not valid JSON") from None
        if not isinstance(data, dict):
            raise Problem(422, "Unprocessable Content", "expected a JSON object")
        return "", data
    if ctype and ctype not in _YAML_TYPES:
        raise Problem(415, "Unsupported Media Type", "send YAML (application/yaml) or JSON")
    try:
        return body.decode("utf-8"), {}
    except UnicodeDecodeError:
        raise Problem(400, "Bad Request", "the body is not UTF-8 text") from None


def _validate_model(model: type[BaseModel], data: dict[str, Any]) -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = [
            f"body.{'.'.join(str(p) for p in e['loc'])}: {e['msg']}"
            for e in exc.errors(include_url=False, include_input=False)
        ]
        raise Problem(422, "Unprocessable Content", problems[0], problems=problems) from None


def _out(doc: PolicyDoc) -> PolicyOut:
    try:
        policy_set = load_policy_texts([(doc.text, doc.file)])
    except ConfigError:
        rules, digest = [], ""
    else:
        rules = [r.id for p in policy_set.policies for r in p.rules]
        digest = policy_set.policy_hash
    return PolicyOut(
        name=doc.name,
        source=doc.source,
        active=doc.active,
        file=doc.file,
        text=doc.text,
        rules=rules,
        policy_hash=digest,
    )


def _brief(d: Decision) -> DecisionBrief:
    return DecisionBrief(rule=d.rule, action=d.action, at=d.at, params=dict(d.params))


def _key(d: Decision) -> str:
    return json.dumps([d.rule, d.action, round(d.at, 6), d.params], sort_keys=True, default=str)


def _engine(runtime: Runtime, ref: PolicyRef, label: str) -> PolicyEngine:
    if ref.text is not None:
        return PolicyEngine(
            load_policy_texts([(ref.text, f"{label}.yaml")]), backend=runtime.cfg.policy_engine
        )
    assert ref.name is not None
    try:
        return PolicyEngine(runtime.policies.set_for(ref.name), backend=runtime.cfg.policy_engine)
    except KeyError:
        raise Problem(404, "Not Found", f"{label}: no policy named {ref.name!r}") from None


# -- routes ---------------------------------------------------------------------------------


@router.get("", response_model=list[PolicyInfo])
def list_policies(runtime: RuntimeDep) -> list[PolicyInfo]:
    return [
        PolicyInfo(name=d.name, source=d.source, active=d.active, file=d.file)
        for d in runtime.policies.all()
    ]


@router.post("/diff", response_model=DiffReport)
@changes_nothing
def diff_policies(body: DiffIn, runtime: RuntimeDep) -> DiffReport:
    """Replay stored calls' utterances through two policies (after the service's NLU, as a
    live call); list the calls whose decisions differ."""
    try:
        old = _engine(runtime, body.old, "old")
        new = _engine(runtime, body.new, "new")
    except ConfigError as err:
        raise _config_problem(err) from None
    changed: list[CallDiff] = []
    intents = runtime.intent_classifier()
    ids = runtime.store.done_call_ids(body.limit)
    try:
        for call_id in ids:
            transcript = runtime.store.transcript(call_id)
            if transcript is None:
                continue
            before = {_key(d): d for d in replay_transcript(transcript, old, intents=intents)}
            after = {_key(d): d for d in replay_transcript(transcript, new, intents=intents)}
            if before.keys() != after.keys():
                changed.append(
                    CallDiff(
                        call_id=call_id,
                        removed=[_brief(d) for k, d in before.items() if k not in after],
                        added=[_brief(d) for k, d in after.items() if k not in before],
                    )
                )
    finally:
        old.close()
        new.close()
    return DiffReport(calls_checked=len(ids), calls_changed=len(changed), changed=changed)


@router.get("/{name}", response_model=PolicyOut)
def get_policy(name: str, runtime: RuntimeDep) -> PolicyOut:
    try:
        doc = runtime.policies.get(_name(runtime, name))
    except ConfigError as err:
        raise _config_problem(err, "Configured policy unreadable") from None
    if doc is None:
        raise Problem(404, "Not Found", f"no policy named {name!r}")
    return _out(doc)


@router.put(
    "/{name}",
    response_model=PolicyOut,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/yaml": {"schema": {"type": "string"}},
                "application/json": {"schema": PolicyIn.model_json_schema()},
            },
        }
    },
)
async def put_policy(
    name: str,
    request: Request,
    runtime: RuntimeDep,
    active: Annotated[bool | None, Query(description="join the active set (default true)")] = None,
) -> PolicyOut:
    """Store a policy after validating it alone and with the active set; new calls use it."""
    name = _name(runtime, name)
    text, data = await _text_body(request)
    if data:
        parsed = _validate_model(PolicyIn, data)
        text, is_active = parsed.text, parsed.active
    else:
        is_active = True
    if active is not None:
        is_active = active
    try:
        doc = runtime.policies.put(name, text, active=is_active)
    except ConfigError as err:
        raise _config_problem(err) from None
    return _out(doc)


@router.delete("/{name}", response_model=Deleted)
def delete_policy(name: str, runtime: RuntimeDep) -> Deleted:
    """Forget a stored policy (a configured file of the same name applies again)."""
    if not runtime.policies.delete(_name(runtime, name)):
        raise Problem(404, "Not Found", f"no stored policy named {name!r}")
    return Deleted(id=name)


@router.post("/{name}/validate", response_model=Validation)
@changes_nothing
async def validate_policy(name: str, request: Request, runtime: RuntimeDep) -> Validation:
    """Check a draft without storing it (the web editor calls this as the user types)."""
    name = _name(runtime, name)
    text, data = await _text_body(request)
    is_active = True
    if data:
        parsed = _validate_model(PolicyIn, data)
        text, is_active = parsed.text, parsed.active
    try:
        policy_set = runtime.policies.validate(name, text, active=is_active)
    except ConfigError as err:
        return Validation(valid=False, problems=list(err.problems))
    rules = [r.id for p in policy_set.policies for r in p.rules]
    return Validation(valid=True, problems=[], rules=rules)


class PolicyTestsOut(BaseModel):
    name: str
    file: str
    text: str


@router.get("/{name}/tests", response_model=PolicyTestsOut)
def get_policy_tests(name: str, runtime: RuntimeDep) -> PolicyTestsOut:
    """The shipped test cases of a configured policy (``tests/NAME.test.yaml`` next to it),
    without their ``policies:`` line, ready for ``POST /v1/policies/{name}/test``."""
    name = _name(runtime, name)
    path = runtime.policies.configured.get(name)
    tests = path.parent / "tests" / f"{name}.test.yaml" if path is not None else None
    if tests is None or not tests.is_file():
        raise Problem(404, "Not Found", f"no test file for policy {name!r}")
    lines = tests.read_text(encoding="utf-8").splitlines(keepends=True)
    text = "".join(line for line in lines if not line.startswith("policies:"))
    return PolicyTestsOut(name=name, file=tests.name, text=text)


@router.post(
    "/{name}/test",
    response_model=PolicyTestReport,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/yaml": {"schema": {"type": "string"}},
                "application/json": {"schema": PolicyTestIn.model_json_schema()},
            },
        }
    },
)
@changes_nothing
async def test_policy(name: str, request: Request, runtime: RuntimeDep) -> PolicyTestReport:
    """Run policy test cases (``rules.testing`` format; ``policies:`` comes from the URL)."""
    name = _name(runtime, name)
    tests, data = await _text_body(request)
    draft: str | None = None
    if data:
        parsed = _validate_model(PolicyTestIn, data)
        tests, draft = parsed.tests, parsed.policy
    if draft is None:
        doc = runtime.policies.get(name)
        if doc is None:
            raise Problem(404, "Not Found", f"no policy named {name!r}")
        draft = doc.text
    try:
        located = load_yaml_text(tests, "tests.yaml")
    except ConfigError as err:
        raise _config_problem(err, "Invalid policy tests") from None
    if isinstance(located.data, dict) and "policies" in located.data:
        line = located.line_of(("policies",))
        raise Problem(
            422,
            "Invalid policy tests",
            "policies: is set by the URL",
            problems=[f"tests.yaml:{line}: policies: leave it out; the URL names the policy"],
        )
    label = policy_file_label(name)
    with tempfile.TemporaryDirectory(prefix="callsense-policy-test-") as tmp:
        root = Path(tmp)
        (root / label).parent.mkdir(parents=True)
        (root / label).write_text(draft, encoding="utf-8")
        test_file = root / "tests.yaml"
        test_file.write_text(f"{tests.rstrip()}\npolicies: [{label}]\n", encoding="utf-8")
        try:
            results = run_test_file(test_file, backend=runtime.cfg.policy_engine)
        except ConfigError as err:
            problems = [p.replace(f"{root}/", "") for p in err.problems]
            raise Problem(422, "Invalid policy tests", problems[0], problems=problems) from None
    cases = [CaseOut(name=r.name, line=r.line, passed=r.passed, diff=list(r.diff)) for r in results]
    passed = sum(c.passed for c in cases)
    return PolicyTestReport(passed=passed, failed=len(cases) - passed, cases=cases)
