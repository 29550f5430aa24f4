"""``callsense policy check|schema|test|diff`` and ``callsense replay``: tools for policy authors.

Decisions go to stdout (or ``--out``) as JSON lines; tables, warnings and errors go to stderr
unless stdout is free, so ``callsense replay ... | jq`` works.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from callsense.configs import shipped
from callsense.connectors.console import err_console, fail, out_console
from callsense.core.errors import CallsenseError, ConfigError, InputError
from callsense.pipeline.model import CallTranscript
from callsense.pipeline.replay import ReplayProblem, read_transcripts
from callsense.pipeline.session import replay_transcript
from callsense.rules.engine import BACKENDS, DEFAULT_BACKEND, PolicyEngine
from callsense.rules.lint import emotion_uses, lint
from callsense.rules.loader import load_policies
from callsense.rules.model import Decision
from callsense.rules.schema import Policy
from callsense.rules.testing import PolicyTestFile, run_policy_tests

if TYPE_CHECKING:
    from callsense.pipeline.nlu.chain import IntentClassifier

__all__ = ["register"]

policy_app = typer.Typer(
    name="policy",
    help="Check, test and backtest YAML escalation policies.",
    no_args_is_help=True,
)

EngineOpt = Annotated[
    str,
    typer.Option("--engine", help=f"rules backend: {' or '.join(BACKENDS)}", show_default=True),
]


def _engine(paths: list[Path], backend: str) -> PolicyEngine:
    if backend not in BACKENDS:
        fail(f"--engine must be one of {', '.join(BACKENDS)} (got {backend!r})")
    try:
        return PolicyEngine.load(paths, backend=backend)
    except ConfigError as err:
        fail(err, code=1)
        raise  # unreachable: fail() exits


def _warn(message: str) -> None:
    err_console.print(Text.assemble(("warning: ", "bold yellow"), message), soft_wrap=True)


@policy_app.command("check")
def check(
    files: Annotated[list[Path], typer.Argument(help="policy YAML files, loaded together")],
    strict: Annotated[bool, typer.Option(help="exit 1 on warnings too")] = False,
    config: Annotated[
        Path | None,
        typer.Option("--config", "-c", help="check against this config (e.g. SER switched off)"),
    ] = None,
) -> None:
    """Validate policy files; print errors and lint warnings with file:line."""
    try:
        policy_set = load_policies(files)
        if config is not None:
            from callsense.connectors.appconfig import load_app_config

            if not load_app_config(config).compliance.emotion:
                problems = emotion_uses(policy_set)
                if problems:
                    raise ConfigError(problems[0], problems=problems)
    except ConfigError as err:
        fail(err, code=1)
    warnings = lint(policy_set)
    for w in warnings:
        _warn(str(w))
    rules = sum(len(p.rules) for p in policy_set.policies)
    err_console.print(
        f"{len(files)} file(s), {rules} rule(s), {len(warnings)} warning(s); "
        f"policy_hash {policy_set.policy_hash[:12]}"
    )
    if strict and warnings:
        raise typer.Exit(1)


@policy_app.command("schema")
def schema(
    tests: Annotated[bool, typer.Option("--tests", help="schema of policy test files")] = False,
) -> None:
    """Print the JSON Schema of policy files (for editor completion; see docs/policies.md)."""
    model = PolicyTestFile if tests else Policy
    body = model.model_json_schema(by_alias=True)
    body["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    body["title"] = "callsense policy test file" if tests else "callsense policy"
    typer.echo(json.dumps(body, indent=2, ensure_ascii=False))


def _test_files(paths: list[Path]) -> list[Path]:
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files.extend(sorted(path.rglob("*.test.yaml")))
        else:
            files.append(path)
    return files


@policy_app.command("test")
def test(
    files: Annotated[list[Path], typer.Argument(help="policy test files or directories")],
    engine: EngineOpt = DEFAULT_BACKEND,
) -> None:
    """Run YAML policy test cases; print a diff for each failing case; exit 1 on failure."""
    if engine not in BACKENDS:
        fail(f"--engine must be one of {', '.join(BACKENDS)} (got {engine!r})")
    results, errors = run_policy_tests(list(_test_files(files)), backend=engine)
    for err in errors:
        for problem in err.problems:
            err_console.print(Text.assemble(("error: ", "bold red"), problem))
    failed = [r for r in results if not r.passed]
    for r in failed:
        where = f"{r.file}:{r.line}" if r.line else r.file
        out_console.print(Text.assemble(("FAIL ", "bold red"), f"{where}: {r.name}"))
        out_console.print("  expected (-) vs actual (+) decisions:")
        for line in r.diff:
            style = "red" if line.startswith("-") else "green" if line.startswith("+") else ""
            out_console.print(Text("    " + line, style=style))
    passed = len(results) - len(failed)
    out_console.print(f"{passed} passed, {len(failed)} failed, {len(errors)} file error(s)")
    if failed or errors or not results:
        raise typer.Exit(1)


def _calls(paths: list[Path], problems: list[ReplayProblem]) -> Iterator[CallTranscript]:
    """Transcripts from JSONL files/directories; bad lines are printed, kept and skipped."""
    try:
        for item in read_transcripts(paths):
            if isinstance(item, ReplayProblem):
                _warn(str(item))
                problems.append(item)
                continue
            yield item
    except InputError as err:
        fail(err, code=1)


def _count(decisions: list[Decision], action: str, **params: Any) -> int:
    return sum(
        1
        for d in decisions
        if d.action == action and all(d.params.get(k) == v for k, v in params.items())
    )


def replay(
    transcripts: Annotated[list[Path], typer.Argument(help="JSONL transcript files or dirs")],
    policy: Annotated[
        list[Path] | None,
        typer.Option("--policy", "-p", help="policy YAML file(s) (default: the config's)"),
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="write decisions here (JSONL)")
    ] = None,
    engine: Annotated[
        str | None,
        typer.Option(
            "--engine",
            help=f"rules backend: {' or '.join(BACKENDS)} "
            f"(default: the config's policy_engine, else {DEFAULT_BACKEND})",
        ),
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config", "-c", help="config with policies, policy_engine and webhook endpoints"
        ),
    ] = None,
    deadline: Annotated[
        float | None,
        typer.Option("--deadline", help="seconds to wait for webhook deliveries before exiting"),
    ] = None,
) -> None:
    """Run policies over stored transcripts; one JSON decision per line, plus a summary table.

    Malformed lines are reported with file:line and skipped; the other calls are still
    processed, and the exit code is then 1. With ``--config`` naming webhook endpoints, the
    decisions are delivered (durable outbox) before the command exits.
    """
    from callsense.connectors.appconfig import AppConfig, load_app_config

    app_cfg: AppConfig | None = None
    if config is not None:
        try:
            app_cfg = load_app_config(config)
        except CallsenseError as exc:
            fail(exc)
    if not policy:
        default = [shipped("policies/default.yaml")]
        policy = list(app_cfg.policies) if app_cfg is not None else default
    if engine is None:
        engine = app_cfg.policy_engine if app_cfg is not None else DEFAULT_BACKEND
    rules_engine = _engine(policy, engine)
    intents = _intents(app_cfg)
    delivered: list[Decision] = []
    problems: list[ReplayProblem] = []
    table = Table(title="replay")
    for column in ("call", "utterances", "decisions", "escalations", "satisfaction", "dissat."):
        table.add_column(column, justify="left" if column == "call" else "right")
    totals = [0, 0, 0, 0, 0, 0]
    sink = out.open("w", encoding="utf-8") if out is not None else nullcontext(None)
    with sink as fh:
        for call in _calls(transcripts, problems):
            decisions = replay_transcript(call, rules_engine, intents=intents)
            if app_cfg is not None and app_cfg.delivery_endpoints():
                delivered.extend(decisions)
            for d in decisions:
                if fh is not None:
                    fh.write(d.to_json() + "\n")
                else:
                    typer.echo(d.to_json())
            row = [
                len(call.utterances),
                len(decisions),
                _count(decisions, "escalate"),
                _count(decisions, "mark", kind="satisfaction"),
                _count(decisions, "mark", kind="dissatisfaction"),
            ]
            table.add_row(call.call_id, *map(str, row))
            totals[0] += 1
            for i, v in enumerate(row):
                totals[i + 1] += v
    table.add_section()
    table.add_row(f"{totals[0]} calls", *map(str, totals[1:]), style="bold")
    (out_console if out is not None else err_console).print(table)
    rules_engine.close()
    if app_cfg is not None and app_cfg.delivery_endpoints():
        from callsense.connectors.cli_webhooks import print_report
        from callsense.connectors.outbox import deliver_decisions

        report = deliver_decisions(delivered, app_cfg.webhooks_config(), deadline_s=deadline)
        print_report(report, err_console)
    if problems:
        raise typer.Exit(1)


def _intents(app_cfg: Any) -> IntentClassifier:
    """The NLU the service would run before the rules (the config's intents, or the shipped
    ones), so a replay's ``intent:`` conditions see what a live call's would."""
    from callsense.pipeline.config import CallsenseConfig
    from callsense.pipeline.nlu.chain import IntentClassifier

    cfg = app_cfg if app_cfg is not None else CallsenseConfig()
    try:
        return IntentClassifier.load(cfg.intents)
    except CallsenseError as exc:
        fail(exc)


def _key(d: Decision) -> str:
    seqs = ",".join(str(e.seq) for e in d.evidence)
    return f"{d.rule} {d.action} at={d.at:g} {json.dumps(d.params, sort_keys=True)} [{seqs}]"


@policy_app.command("diff")
def diff(
    old: Annotated[Path, typer.Argument(help="the policy file in use")],
    new: Annotated[Path, typer.Argument(help="the candidate policy file")],
    calls: Annotated[list[Path], typer.Option("--calls", help="JSONL transcripts (dir or file)")],
    engine: EngineOpt = DEFAULT_BACKEND,
) -> None:
    """Backtest: which calls' decisions change between two policy versions, and how."""
    before, after = _engine([old], engine), _engine([new], engine)
    intents = _intents(None)
    total = changed = 0
    for call in _calls(calls, []):
        total += 1
        a = [_key(d) for d in replay_transcript(call, before, intents=intents)]
        b = [_key(d) for d in replay_transcript(call, after, intents=intents)]
        if a == b:
            continue
        changed += 1
        out_console.print(Text(f"{call.call_id}: {len(a)} -> {len(b)} decision(s)", style="bold"))
        for line in a:
            if line not in b:
                out_console.print(Text(f"  - {line}", style="red"))
        for line in b:
            if line not in a:
                out_console.print(Text(f"  + {line}", style="green"))
    out_console.print(f"{changed} of {total} call(s) change")
    before.close()
    after.close()


def register(app: typer.Typer) -> None:
    app.add_typer(policy_app, name="policy")
    app.command("replay")(replay)
