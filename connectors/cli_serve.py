"""``callsense serve`` (the HTTP/WebSocket service) and ``callsense keys`` (its API keys)."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import typer
from rich.markup import escape
from rich.table import Table

from callsense.connectors.cli_ray import RayConfigOpt
from callsense.connectors.cli_transcribe import ConfigOpt, ModelOpt, VadModelOpt
from callsense.connectors.console import StderrHandler, err_console, fail, out_console
from callsense.core.errors import CallsenseError

if TYPE_CHECKING:
    from callsense.connectors.auth import KeyStore

__all__ = ["register"]

log = logging.getLogger(__name__)

DbOpt = Annotated[
    str | None,
    typer.Option(
        "--db",
        help="Database URL (default: $CALLSENSE_DB_URL, else sqlite:///callsense.db).",
        show_default=False,
    ),
]

keys_app = typer.Typer(help="API keys of the HTTP service.", no_args_is_help=True)


def _setup_logging(verbose: bool) -> None:
    from callsense.connectors.app import RequestIdFilter

    handler = StderrHandler()
    handler.addFilter(RequestIdFilter())
    handler.setFormatter(
        logging.Formatter("%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s")
    )
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, handlers=[handler],
                        force=True)  # fmt: skip
    # one access line per request with its id comes from our middleware
    logging.getLogger("callsense.http").setLevel(logging.INFO)
    logging.getLogger("connectors").setLevel(logging.INFO)


def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    config: ConfigOpt = None,
    db: DbOpt = None,
    model: ModelOpt = None,
    vad_model: VadModelOpt = None,
    data_dir: Annotated[Path, typer.Option(help="Where uploaded recordings are kept.")] = Path(
        "callsense-data"
    ),
    max_upload_mb: Annotated[float, typer.Option(help="Largest accepted upload.")] = 200.0,
    metrics_public: Annotated[
        bool, typer.Option(help="Serve /metrics without an API key.")
    ] = False,
    docs_public: Annotated[
        bool,
        typer.Option(
            help="Serve the API docs (/docs, /redoc, /openapi.json) without an API key; "
            "by default /openapi.json needs a key and /docs, /redoc are off."
        ),
    ] = False,
    drain_timeout: Annotated[
        float,
        typer.Option(help="On SIGTERM, how long running live calls may go on before exit."),
    ] = 600.0,
    gateway_id: Annotated[
        str | None,
        typer.Option(
            help="Name of this gateway's live calls in a shared database (default: host "
            "name); after a crash it recovers its own interrupted calls."
        ),
    ] = None,
    ray_config: RayConfigOpt = None,
    platform_signatures: Annotated[
        Literal["required", "off"],
        typer.Option(
            help="required: live connections of a platform (Genesys AudioHook, Twilio) must "
            "be signed by it with the API key's client secret (`callsense keys secret NAME`); "
            "off: the API key alone admits them (local development only).",
        ),
    ] = "required",
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Serve the HTTP API, live streams and web UI (uvicorn). Needs no config file.

    Every route but /healthz, /readyz and the web page needs an API key: create one with
    `callsense keys create NAME`. Models load in the background; /readyz answers 200 once
    they are ready (if they cannot load, serve exits with the error). Ctrl-C lets the
    running call finish before exiting.
    """
    _setup_logging(verbose)
    import uvicorn

    from callsense.connectors.app import SERVER_OPTIONS, create_app
    from callsense.connectors.appconfig import load_app_config
    from callsense.connectors.service_settings import ServiceSettings

    try:
        cfg = load_app_config(config, model=model, vad_model=vad_model)
        extra = {"gateway_id": gateway_id} if gateway_id else {}
        settings = ServiceSettings(
            data_dir=data_dir,
            max_upload_mb=max_upload_mb,
            metrics_public=metrics_public,
            docs_public=docs_public,
            ray_config=ray_config,
            platform_signatures=platform_signatures,
            **extra,
        )
        app = create_app(cfg, db_url=db, settings=settings)
    except CallsenseError as exc:
        fail(exc)
    except ValueError:  # pydantic refused a setting; the only free-form one is the id
        fail(f"--gateway-id: use 1-64 of A-Z a-z 0-9 _ . : - (got {gateway_id!r})")
    docs = " (docs at /docs)" if docs_public else ""
    err_console.print(f"callsense serving on http://{escape(host)}:{port}{docs}")
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        **SERVER_OPTIONS,
        timeout_graceful_shutdown=int(settings.shutdown_timeout_s) or None,
    )
    _DrainingServer(config, drain_timeout_s=drain_timeout).run()
    load_error = app.state.runtime.load_error
    if load_error is not None:  # the server stopped itself (``_DrainingServer.watch_models``)
        fail(f"the models could not be loaded, so serve stopped: {load_error}")


KeysConfigOpt = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        help="The service's YAML config: its outbox.db_url is the database `serve` uses "
        "(default: $CALLSENSE_CONFIG).",
    ),
]


def _store(db: str | None, config: Path | None = None) -> KeyStore:
    """The key table of the database ``serve`` would use: ``--db``, else the config's
    ``outbox.db_url``, else $CALLSENSE_DB_URL, else ./callsense.db."""
    from callsense.connectors.appconfig import load_app_config
    from callsense.connectors.auth import KeyStore
    from callsense.connectors.storage import make_engine

    try:
        if db is None:
            db = load_app_config(config).outbox.db_url
        return KeyStore(make_engine(db))
    except CallsenseError as exc:
        fail(exc)


@keys_app.command("create")
def keys_create(
    name: Annotated[str, typer.Argument(help="Who or what uses the key (A-Z a-z 0-9 _ . -).")],
    db: DbOpt = None,
    config: KeysConfigOpt = None,
    role: Annotated[
        Literal["admin", "viewer"],
        typer.Option(
            help="admin: everything; viewer: read and watch (the supervisor wall), never "
            "change policies, calls or alerts.",
        ),
    ] = "admin",
) -> None:
    """Create an API key and print it once; only its hash is stored."""
    store = _store(db, config)
    try:
        key = store.create(name, role)
    except CallsenseError as exc:
        fail(exc)
    out_console.print(key)
    err_console.print(f"{role} key {escape(name)!s} created; it is shown only now, keep it safe")


@keys_app.command("list")
def keys_list(db: DbOpt = None, config: KeysConfigOpt = None) -> None:
    """API keys by name (never the keys themselves)."""
    import datetime as dt

    def when(t: float | None) -> str:
        return "-" if t is None else dt.datetime.fromtimestamp(t, dt.UTC).strftime("%F %TZ")

    table = Table(title="API keys")
    for col in ("name", "id", "role", "created", "revoked", "secret"):
        table.add_column(col)
    for k in _store(db, config).list():
        secret = "yes" if k.has_secret else "-"
        table.add_row(
            escape(k.name), k.key_id, k.role, when(k.created_at), when(k.revoked_at), secret
        )
    out_console.print(table)


@keys_app.command("secret")
def keys_secret(
    name: Annotated[str, typer.Argument(help="The active key that gets the secret.")],
    db: DbOpt = None,
    config: KeysConfigOpt = None,
    value_from_env: Annotated[
        str | None,
        typer.Option(
            "--value-from-env",
            metavar="VAR",
            help="Store the secret the platform issued, read from this environment variable, "
            "instead of making one (Twilio: the account's auth token, which signs its Media "
            "Streams upgrades). Nothing is printed.",
        ),
    ] = None,
) -> None:
    """Make a new client secret for a key and print it once (base64): the platform signs its
    connections with it (Genesys AudioHook: the integration's Client Secret, with this key
    as its API Key). It replaces the key's old secret."""
    store = _store(db, config)
    if value_from_env is not None:
        _set_secret_from_env(store, name, value_from_env)
        return
    try:
        secret = store.create_secret(name)
    except CallsenseError as exc:
        fail(exc)
    out_console.print(secret, soft_wrap=True)
    err_console.print(
        f"client secret of key {escape(name)} set; it is shown only now, give it to the "
        "platform (the old secret no longer verifies)"
    )


def _set_secret_from_env(store: KeyStore, name: str, var: str) -> None:
    """``keys secret NAME --value-from-env VAR``: the platform's own secret (an environment
    variable, so it never shows in the shell's history or the process list)."""
    import os

    value = os.environ.get(var, "").strip()
    if not value:
        fail(f"--value-from-env: ${var} is not set or empty")
    try:
        store.set_secret(name, value)
    except CallsenseError as exc:
        fail(exc)
    err_console.print(f"secret of key {escape(name)} set from ${escape(var)}")


@keys_app.command("revoke")
def keys_revoke(name: str, db: DbOpt = None, config: KeysConfigOpt = None) -> None:
    """Revoke a key: requests with it are refused from now on."""
    if not _store(db, config).revoke(name):
        fail(f"no active key named {name!r}")
    err_console.print(f"key {escape(name)} revoked")


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
    app.add_typer(keys_app, name="keys")


class _DrainingServer:
    """uvicorn's server with a graceful drain: the first SIGTERM/SIGINT stops admitting live
    calls (``/readyz`` answers 503, new streams get 503) and waits up to ``drain_timeout_s``
    for the running calls to end, then shuts down; a second signal exits at once. Models
    that fail to load shut it down too: a process answering /readyz 503 forever looks alive
    to a supervisor that would otherwise restart it or page someone."""

    def __init__(self, config: Any, *, drain_timeout_s: float) -> None:
        import uvicorn

        outer = self

        class Server(uvicorn.Server):
            def handle_exit(self, sig: int, frame: Any) -> None:
                if outer.draining or self.should_exit:
                    super().handle_exit(sig, frame)  # second signal: stop now
                    return
                outer.draining = True
                loop = outer.loop
                if loop is None:
                    super().handle_exit(sig, frame)
                    return
                loop.call_soon_threadsafe(lambda: loop.create_task(outer.drain()))

        self.server = Server(config)
        self.app = config.app
        self.drain_timeout_s = drain_timeout_s
        self.draining = False
        self.loop: asyncio.AbstractEventLoop | None = None

    async def drain(self) -> None:
        admission = getattr(self.app.state, "admission", None)
        if admission is not None:
            active = admission.stats().active
            log.warning("shutdown: draining %d live call(s)", active)
            done = await admission.drain(self.drain_timeout_s)
            if not done:
                log.warning("shutdown: drain timeout, ending the remaining live calls")
        self.server.should_exit = True

    async def watch_models(self) -> None:
        """Stop serving if the models fail to load (``serve`` then exits with the error)."""
        runtime = self.app.state.runtime
        while not runtime.models_ready.is_set():  # set by the loader thread, loaded or not
            await asyncio.sleep(0.2)
        if runtime.load_error is not None:
            self.server.should_exit = True

    def run(self) -> None:
        async def main() -> None:
            self.loop = asyncio.get_running_loop()
            watcher = asyncio.create_task(self.watch_models(), name="callsense-models-watch")
            try:
                await self.server.serve()
            finally:
                watcher.cancel()

        asyncio.run(main())
