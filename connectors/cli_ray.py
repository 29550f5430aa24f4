"""``callsense ray …``: deploy the model tier; ``analyze --engine ray`` runs through here.

Ray is an extra (``callsense[ray]``); nothing here imports it until a command needs it.
"""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from typing import Annotated, Any

import typer

from callsense.connectors.batch_table import summary_table
from callsense.connectors.cli_transcribe import ConfigOpt, ModelOpt
from callsense.connectors.console import err_console, fail, out_console, setup_logging
from callsense.core.errors import CallsenseError

__all__ = ["ENV_RAY_CONFIG", "RayConfigOpt", "analyze_on_ray", "register"]

ENV_RAY_CONFIG = "CALLSENSE_RAY_CONFIG"

RayConfigOpt = Annotated[
    Path | None,
    typer.Option(
        "--ray-config",
        envvar=ENV_RAY_CONFIG,
        help="ray.yaml: cluster address, replicas, batching, archive actor pools.",
    ),
]

ray_app = typer.Typer(help="Run callsense on a Ray cluster (needs the callsense[ray] extra).")


def _require_ray() -> None:
    try:
        import ray
        import ray.serve  # noqa: F401
    except ImportError:
        fail("Ray is not installed: pip install 'callsense[ray]' (or 'ray[serve,data]')")


def analyze_on_ray(
    files: list[Path],
    out: Path,
    cfg: Any,
    *,
    ray_config: Path | None,
    use_cache: bool,
    with_tts: bool,
    deadline: float | None,
) -> None:
    """``callsense analyze --engine ray``: the archive runner, then the same table/webhooks."""
    _require_ray()
    from callsense.pipeline.distributed.archive import run_archive
    from callsense.pipeline.distributed.config import load_ray_config

    try:
        ray_cfg = load_ray_config(ray_config)
        with err_console.status(f"analyzing {len(files)} file(s) on Ray…"):
            report = run_archive(files, out, cfg, ray_cfg, use_cache=use_cache, with_tts=with_tts)
    except CallsenseError as exc:
        fail(exc)
    out_console.print(
        summary_table(report.summaries, report.failed, title="callsense analyze (engine: ray)")
    )
    if cfg.delivery_endpoints():
        from callsense.connectors.cli_webhooks import print_report
        from callsense.connectors.outbox import deliver_decisions

        delivery = deliver_decisions(report.decisions, cfg.webhooks_config(), deadline_s=deadline)
        print_report(delivery, err_console)
    err_console.print(f"outputs in {out}/")
    if report.failed:
        raise typer.Exit(1)


@ray_app.command("serve-model")
def serve_model(
    config: ConfigOpt = None,
    ray_config: RayConfigOpt = None,
    model: ModelOpt = None,
    detach: Annotated[
        bool,
        typer.Option("--detach", help="Return once deployed (needs an external cluster)."),
    ] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Deploy the SenseVoice model tier as a Ray Serve application (no HTTP proxy).

    Gateways (``callsense serve`` with the same --ray-config) reach it through deployment
    handles. Without --detach the command stays up until Ctrl-C, then deletes the app.
    """
    setup_logging(verbose)
    _require_ray()
    from callsense.connectors.appconfig import load_app_config
    from callsense.pipeline.distributed.config import load_ray_config
    from callsense.pipeline.distributed.serve_recognizer import deploy

    try:
        cfg = load_app_config(config, model=model)
        ray_cfg = load_ray_config(ray_config)
    except CallsenseError as exc:
        fail(exc)
    if detach and ray_cfg.address is None:
        fail("--detach needs address: in ray.yaml (a local Ray ends with this command)")
    with err_console.status("deploying the model tier…"):
        deploy(ray_cfg, cfg.recognizer)
    scaling = (
        f"autoscaling {ray_cfg.autoscaling.min_replicas}-{ray_cfg.autoscaling.max_replicas}"
        if ray_cfg.autoscaling
        else f"{ray_cfg.num_replicas or 1} replica(s)"
    )
    err_console.print(
        f"model tier up: app {ray_cfg.app_name!r}, deployment {ray_cfg.deployment!r}, {scaling}"
    )
    if detach:
        return
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    from ray import serve

    serve.delete(ray_cfg.app_name)
    err_console.print("model tier removed")


def register(app: typer.Typer) -> None:
    app.add_typer(ray_app, name="ray")
