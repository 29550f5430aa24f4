"""``callsense explain`` (why each decision fired) and ``callsense purge`` (forget calls)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from callsense.connectors.console import err_console, fail, out_console
from callsense.core.errors import CallsenseError, ConfigError

__all__ = ["register"]

DbOpt = Annotated[
    str | None,
    typer.Option("--db", help="database URL (default: config outbox.db_url, $CALLSENSE_DB_URL)"),
]
ConfigOpt = Annotated[Path | None, typer.Option("--config", "-c", help="YAML config")]


def _call_from_results(results: Path, call_id: str) -> tuple[list[dict], list[dict], dict]:
    call_dir = results / call_id
    if not (call_dir / "decisions.jsonl").is_file():
        fail(f"{call_dir}: no analyze results for call {call_id!r}")

    def jsonl(name: str) -> list[dict]:
        path = call_dir / name
        lines = path.read_text(encoding="utf-8").splitlines() if path.is_file() else []
        return [json.loads(x) for x in lines if x.strip()]

    summary_path = call_dir / "summary.json"
    summary = json.loads(summary_path.read_text(encoding="utf-8")) if summary_path.is_file() else {}
    return jsonl("decisions.jsonl"), jsonl("utterances.jsonl"), summary


def _policy_sources(paths: list[str], db_texts: list[tuple[str, str]]) -> dict[str, Any]:
    """Rule id -> (source, rule index) over the policies that are in force now."""
    from callsense.rules.loader import load_policy_texts

    texts = list(db_texts)
    for p in paths:
        try:
            texts.append((Path(p).read_text(encoding="utf-8"), p))
        except OSError:
            continue
    if not texts:
        return {}
    try:
        policy_set = load_policy_texts(texts)
    except ConfigError:
        return {}
    found: dict[str, Any] = {"__hash__": policy_set.policy_hash}
    for source in policy_set.sources:
        for i, rule in enumerate(source.policy.rules):
            found[rule.id] = (source, i)
    return found


def explain(
    call_id: Annotated[str, typer.Argument(help="the call's id")],
    results: Annotated[
        Path | None, typer.Option("--results", help="an analyze --out directory instead of the DB")
    ] = None,
    db: DbOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Why each decision of a call fired: the rule's condition and the utterances behind it."""
    from callsense.connectors.appconfig import load_app_config

    try:
        cfg = load_app_config(config)
    except CallsenseError as exc:
        fail(exc)
    db_texts: list[tuple[str, str]] = []
    if results is not None:
        decisions, utterances, summary = _call_from_results(results, call_id)
        policy_paths = list(summary.get("audit", {}).get("policies", [])) or [
            str(p) for p in cfg.policies
        ]
    else:
        from callsense.connectors.calls_store import CallStore
        from callsense.connectors.policy_store import PolicyStore
        from callsense.connectors.storage import make_engine

        engine = make_engine(db or cfg.outbox.db_url)
        store = CallStore(engine)
        record = store.get(call_id)
        if record is None:
            fail(f"no call {call_id!r} in the database")
        decisions, utterances = store.decisions(call_id), store.utterances(call_id)
        summary = record.summary or {}
        policy_paths = [str(p) for p in cfg.policies]
        db_texts = [
            (d.text, d.file)
            for d in PolicyStore(engine, cfg.policies).active()
            if d.source == "stored"
        ]
    rules = _policy_sources(policy_paths, db_texts)
    audit = summary.get("audit", {})
    out = out_console
    out.print(f"[bold]call {escape(call_id)}[/]: {len(decisions)} decision(s)")
    if audit:
        model, config_hash = str(audit.get("model")), str(audit.get("config_hash"))
        out.print(f"  model {escape(model)}, config {config_hash[:12]}")
    by_seq = {i: u for i, u in enumerate(utterances)}
    for d in decisions:
        params = json.dumps(d.get("params", {}), ensure_ascii=False)
        out.print(
            f"\n[bold]{escape(d['rule'])}[/] → {escape(d['action'])} {escape(params)} "
            f"at {d['at']:.2f}s (policy {escape(str(d.get('policy')))}, "
            f"hash {str(d.get('policy_hash'))[:12]})"
        )
        found = rules.get(d["rule"])
        if found is None:
            out.print("  condition: rule not found in the policies in force now")
        else:
            source, index = found
            when = source.located.data["rules"][index]["when"]
            line = source.line("rules", index, "when")
            out.print(
                f"  condition ({escape(source.file)}:{line}): "
                f"{escape(json.dumps(when, ensure_ascii=False))}"
            )
            if rules.get("__hash__") != d.get("policy_hash"):
                out.print("  [yellow]note: the policies changed since this decision[/]")
        out.print("  because of:")
        for ev in d.get("evidence", []):
            utt = by_seq.get(ev["seq"], {})
            out.print(
                f"    #{ev['seq']} {ev['start']:.2f}-{ev['end']:.2f}s {ev['speaker']} "
                f"{ev.get('emotion') or '-'} {ev.get('event') or '-'}: "
                f"{escape(str(utt.get('text', '')))}",
                highlight=False,
            )


def purge(
    call: Annotated[
        list[str] | None, typer.Option("--call", help="call id to remove (repeatable)")
    ] = None,
    older_than_days: Annotated[
        float | None, typer.Option("--older-than-days", help="remove calls older than this")
    ] = None,
    data_dir: Annotated[
        Path, typer.Option("--data-dir", help="the service's data directory (uploaded audio)")
    ] = Path("callsense-data"),
    db: DbOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Remove everything of calls: rows, audio, result-cache entries, delivered webhooks.

    Besides ``--data-dir`` and the config's cache, the directories every ``callsense serve``
    on this database recorded are purged too; one that cannot be reached from here is named
    and the exit code is 1, since its files are still there."""
    from callsense.connectors.appconfig import load_app_config
    from callsense.connectors.retention import Purger, recorded_locations, unreachable
    from callsense.connectors.storage import make_engine
    from callsense.pipeline.cache import ResultCache

    if not call and older_than_days is None:
        fail("say which calls: --call ID or --older-than-days N")
    try:
        cfg = load_app_config(config)
        engine = make_engine(db or cfg.outbox.db_url)
        locations = recorded_locations(engine)
    except CallsenseError as exc:
        fail(exc)
    cache = ResultCache(cfg.cache.dir)
    audio_dir = data_dir / "audio"
    out_of_reach = unreachable(locations)
    reachable = [loc for loc in locations if loc not in out_of_reach]
    purger = Purger(
        engine,
        audio_dir=audio_dir,
        cache=cache,
        more_audio_dirs=tuple(loc.path for loc in reachable if loc.kind == "audio"),
        more_caches=tuple(
            ResultCache(loc.path)
            for loc in reachable
            if loc.kind == "cache" and loc.path != cache.directory.resolve()
        ),
    )
    removed: list[str] = []
    missing: list[str] = []
    for call_id in call or []:
        (removed if purger.purge_call(call_id) else missing).append(call_id)
    if older_than_days is not None:
        removed += purger.purge_older_than(older_than_days * 86400)
    out_console.print(f"purged {len(removed)} call(s)")
    if not locations:
        err_console.print(
            "note: no `callsense serve` recorded its directories in this database; files "
            f"were looked for only in {escape(str(audio_dir))} and {escape(str(cache.directory))}"
        )
    problems = []
    if out_of_reach:
        where = "; ".join(str(loc) for loc in out_of_reach)
        problems.append(
            f"not reachable from here, files of these calls may remain: {where}; "
            "run purge where the service runs, or DELETE /v1/calls/ID"
        )
    if missing:
        problems.append(f"not in the database (cache entries removed if any): {', '.join(missing)}")
    if problems:
        fail("\n".join(problems), code=1)


def register(app: typer.Typer) -> None:
    app.command("explain")(explain)
    app.command("purge")(purge)
