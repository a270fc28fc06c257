"""Liveness and readiness probes, at the root (not under /api/v1) where orchestrators look."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated

from fastapi import APIRouter, Depends

from keel.core.dependencies import AppSettings
from keel.core.errors import ServiceUnavailableError
from keel.core.plain_route import plain_get
from keel.core.readiness import OK, ReadinessCheck, run_checks
from keel.core.state import from_state
from keel.features.health.schemas import Health, Readiness

router = APIRouter(tags=["operations"])


get_readiness_checks = from_state("readiness_checks", dict[str, ReadinessCheck])


# Asked every few seconds of every process: a PlainRoute, since it takes nothing from the
# request, skips FastAPI's request handling.
@plain_get(router, "/health", response_model=Health, summary="Liveness: the process is serving")
async def health() -> Health:
    return Health()


@router.get(
    "/ready",
    response_model=Readiness,
    summary="Readiness: every backend answers",
    responses={503: {"description": "A backend is unreachable; `details.checks` says which"}},
)
async def ready(
    settings: AppSettings,
    checks: Annotated[Mapping[str, ReadinessCheck], Depends(get_readiness_checks)],
) -> Readiness:
    results = await run_checks(checks, settings.ready_timeout_seconds)
    if any(result != OK for result in results.values()):
        raise ServiceUnavailableError("Not ready", details={"checks": results})
    return Readiness(status=OK, checks=results)
