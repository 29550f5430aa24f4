"""``/v1/stats``: trends across the stored calls, per day, hour or policy (docs/stats.md)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from callsense.connectors.routers.common import PROBLEM_RESPONSES, RuntimeDep
from callsense.connectors.stats import StatsQuery, StatsReport, call_stats

__all__ = ["router"]

router = APIRouter(prefix="/v1/stats", tags=["stats"], responses=PROBLEM_RESPONSES)


@router.get("", response_model=StatsReport)
def get_stats(runtime: RuntimeDep, query: Annotated[StatsQuery, Query()]) -> StatsReport:
    """Escalation and satisfaction rates, time to first escalation, handle time, hold and
    non-talk shares and the rules fired, per group and in total, over the finished calls
    received in ``[since, until)``. A bad or too wide range is a 422 problem."""
    return call_stats(runtime.engine, query)
