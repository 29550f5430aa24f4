"""The FastAPI app: routers per resource, API-key auth, problem details, request ids.

``create_app`` builds everything from an ``AppConfig`` (defaults: no config file needed)
and a database URL (default ``callsense.db`` in the working directory); configured policy
files are read and validated there, so a wrong one stops ``serve`` at once. Start-up loads the
models in the background (``/readyz`` says when they are ready), starts the job worker,
the outbox sender and the APScheduler jobs; shutdown lets the running job finish.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import re
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from callsense.connectors.appconfig import AppConfig
from callsense.connectors.auth import require_api_key
from callsense.connectors.live.stream import router as stream_router
from callsense.connectors.platforms.genesys import router as audiohook_router
from callsense.connectors.platforms.twilio import router as twilio_router
from callsense.connectors.retention import record_locations
from callsense.connectors.routers import calls, health, policies, predict, stats, webhooks
from callsense.connectors.routers.common import Problem, problem_response
from callsense.connectors.runtime import Runtime
from callsense.connectors.service_settings import NotReadyError, ServiceSettings
from callsense.connectors.wall import routes as wall
from callsense.connectors.wall.alerts import AlertStore
from callsense.connectors.wall.hub import Wall
from callsense.connectors.web.router import router as web_router
from callsense.core.errors import ConfigError, InputError, RetryableError
from callsense.pipeline.cache import ResultCache
from callsense.rules.loader import load_policies

__all__ = ["SERVER_OPTIONS", "RequestIdFilter", "create_app", "loggable", "request_id_var"]

log = logging.getLogger("callsense.http")

# How uvicorn serves the app (``callsense serve``, and the tests' and benches' servers).
SERVER_OPTIONS: dict[str, Any] = {
    "access_log": False,  # uvicorn's would print query strings, which may carry api_key
    "log_config": None,
    # Call audio (PCM, mu-law, their base64) hardly compresses, yet permessage-deflate
    # costs zlib work on every 20 ms frame of every live call and at every handshake.
    "ws_per_message_deflate": False,
    # websockets' sans-I/O protocol: a connection is a protocol object on the event loop, not
    # tasks of its own (handshake, transfer, keepalive), so a burst of upgrades
    # (bench/hostile.py, idle-sockets) holds the loop, and the live calls on it, for less
    "ws": "websockets-sansio",
}

request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")
_REQUEST_ID_RE = re.compile(r"[A-Za-z0-9._:-]{1,128}")


class RequestIdFilter(logging.Filter):
    """Adds ``record.request_id`` (use ``%(request_id)s`` in a log format)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id_var.get()
        return True


_LOGGED_PATH_CHARS = 256


def loggable(text: str, limit: int = _LOGGED_PATH_CHARS) -> str:
    """``text`` safe for one log line: a backslash and every character that is not
    printable (CR, LF, NUL, other controls, U+2028) escaped as in Python source, and cut at
    ``limit`` characters. A client chooses the path it requests (``%0A`` is a newline by
    the time it reaches us), and a log line must not end where a client wants it to."""
    if text.isprintable() and "\\" not in text and len(text) <= limit:
        return text
    out: list[str] = []
    size = 0
    for ch in text:
        printable = ch.isprintable() and ch != "\\"
        piece = ch if printable else ch.encode("unicode_escape").decode("ascii")
        size += len(piece)
        if size > limit:
            out.append("...")
            break
        out.append(piece)
    return "".join(out)


class RequestIdMiddleware:
    """Takes the client's ``X-Request-ID`` (if sane) or makes one, returns it, and logs one
    line per request: method, path (never the query: it may hold ``api_key``), status, ms.
    The id reaches every log line of the request through ``RequestIdFilter``; the method and
    path are escaped (``loggable``), since the client wrote them."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        given = dict(scope.get("headers") or []).get(b"x-request-id", b"").decode("latin-1")
        rid = given if _REQUEST_ID_RE.fullmatch(given) else uuid.uuid4().hex
        token = request_id_var.set(rid)
        scope.setdefault("state", {})["request_id"] = rid
        started = time.perf_counter()
        status = 0

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", rid.encode()))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            log.info(
                "%s %s %s %.1fms",
                loggable(str(scope.get("method", "WS")), 16),
                loggable(str(scope.get("path", ""))),
                status or "-",
                (time.perf_counter() - started) * 1000,
            )
            request_id_var.reset(token)


def _install_handlers(app: FastAPI) -> None:
    @app.exception_handler(Problem)
    async def _problem(request: Request, exc: Problem) -> Any:
        return problem_response(
            request, exc.status, exc.title, exc.detail, problems=exc.problems, headers=exc.headers
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Any:
        title = {
            401: "Unauthorized",
            403: "Forbidden",
            404: "Not Found",
            405: "Method Not Allowed",
        }.get(exc.status_code, "Error")
        return problem_response(
            request, exc.status_code, title, str(exc.detail), headers=dict(exc.headers or {})
        )

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> Any:
        problems = [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()]
        return problem_response(
            request, 422, "Unprocessable Content", problems[0] if problems else None,
            problems=problems,
        )  # fmt: skip

    @app.exception_handler(ConfigError)
    async def _config(request: Request, exc: ConfigError) -> Any:
        return problem_response(
            request, 422, "Invalid configuration", exc.problems[0], problems=list(exc.problems)
        )

    @app.exception_handler(InputError)
    async def _input(request: Request, exc: InputError) -> Any:
        return problem_response(request, 422, "Unprocessable Content", str(exc))

    @app.exception_handler(RetryableError)
    async def _retry(request: Request, exc: RetryableError) -> Any:
        headers = {"Retry-After": "10" if isinstance(exc, NotReadyError) else "30"}
        return problem_response(request, 503, "Service Unavailable", str(exc), headers=headers)


def _api_docs(app: FastAPI, settings: ServiceSettings) -> None:
    """The API's own description: public only when asked for, since it maps every route.

    Closed (the default), ``/openapi.json`` answers with a key (for client generators) and
    the browser pages are not served: a browser cannot add the key to their requests.
    """
    if settings.docs_public:
        app.openapi_url, app.docs_url, app.redoc_url = "/openapi.json", "/docs", "/redoc"
        app.setup()
        return

    @app.get("/openapi.json", include_in_schema=False, dependencies=[Depends(require_api_key)])
    def openapi() -> JSONResponse:
        return JSONResponse(app.openapi())


def create_app(
    config: AppConfig | None = None,
    *,
    db_url: str | None = None,
    load_models: bool = True,
    settings: ServiceSettings | None = None,
) -> FastAPI:
    """The service app; ``load_models=False`` skips the recognizer (transcripts only)."""
    cfg = config or AppConfig()
    if cfg.policies:
        # a configured file that is not a policy is a start-up error (``serve`` exits with
        # its file:line), not a service answering /readyz 503 until someone looks
        load_policies(cfg.policies)
    settings = settings or ServiceSettings()
    runtime = Runtime(cfg, db_url=db_url, settings=settings, load_models=load_models)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # ``callsense purge`` run from elsewhere finds this process's files through these
        cache = ResultCache(cfg.cache.dir).directory if cfg.cache.enabled else None
        record_locations(
            runtime.engine, runtime.settings.gateway_id, audio_dir=runtime.audio_dir,
            cache_dir=cache,
        )  # fmt: skip
        runtime.start()
        sender = asyncio.create_task(runtime.deliver_forever(), name="callsense-outbox")
        try:
            yield
        finally:
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sender
            await asyncio.to_thread(runtime.stop)

    app = FastAPI(
        openapi_url=None,  # set by _api_docs
        docs_url=None,
        redoc_url=None,
        title="callsense",
        summary="Customer-service calls in, escalation decisions out.",
        version="0.1.0",
        lifespan=lifespan,
        redirect_slashes=False,  # an API answers 404, not a redirect to a guessed path
    )
    app.state.runtime = runtime
    app.state.wall = Wall(AlertStore(runtime.engine))  # live calls publish, wall pages watch
    # live calls pass this gate: at most max_calls, none while draining for a shutdown
    from callsense.pipeline.distributed.admission import Admission

    app.state.admission = Admission(
        cfg.max_calls, per_key=cfg.max_calls_per_key, unstarted_per_key=cfg.max_unstarted_per_key
    )
    app.add_middleware(RequestIdMiddleware)
    _install_handlers(app)
    # the live routes first: a burst of upgrades is matched against them before anything else
    for router in (stream_router, twilio_router, audiohook_router, wall.ws_router):
        app.include_router(router)  # WebSocket routes check keys at the upgrade
    app.include_router(health.router)
    keyed = [Depends(require_api_key)]
    for module in (calls, policies, webhooks, predict, stats, wall):
        app.include_router(module.router, dependencies=keyed)
    app.include_router(web_router)  # the page is public; its API calls carry a key
    _api_docs(app, settings)
    return app
