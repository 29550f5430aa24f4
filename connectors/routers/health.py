"""Liveness, readiness and metrics: what orchestrators and Prometheus poll."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from callsense.connectors.auth import require_api_key
from callsense.connectors.metrics import CONTENT_TYPE
from callsense.connectors.routers.common import RuntimeDep

__all__ = ["router"]

router = APIRouter(tags=["health"])


class Health(BaseModel):
    status: str


class Readiness(BaseModel):
    ready: bool
    models: str
    recognizer: str
    database: str
    draining: bool = False


@router.get("/healthz", response_model=Health)
def healthz() -> Health:
    """The process is up (no key needed, no database touched)."""
    return Health(status="ok")


@router.get("/readyz", response_model=Readiness, responses={503: {"model": Readiness}})
def readyz(request: Request, runtime: RuntimeDep) -> JSONResponse:
    """200 once the models are loaded and the database answers; 503 before, and while the
    gateway drains for a shutdown, so the load balancer sends new calls elsewhere."""
    checks = runtime.readiness()
    admission = getattr(request.app.state, "admission", None)
    draining = bool(admission is not None and admission.stats().draining)
    ready = runtime.ready and checks["database"] == "ok" and not draining
    body = Readiness(ready=ready, draining=draining, **checks)
    return JSONResponse(body.model_dump(), status_code=200 if ready else 503)


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE: {}}, "description": "Prometheus text format"}},
)
def metrics(request: Request, runtime: RuntimeDep) -> Response:
    """Prometheus metrics; needs an API key unless ``metrics_public`` is set."""
    if not runtime.settings.metrics_public:
        require_api_key(request)
    return Response(runtime.metrics.render(), media_type=CONTENT_TYPE)
