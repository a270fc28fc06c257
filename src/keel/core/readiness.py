"""Readiness: is every backend this process depends on answering right now?

Each backend registers a named async check in the lifespan; `/ready` runs them concurrently,
each under a short timeout, so one hung dependency cannot hang the probe.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping

from keel.core.logging import get_logger

log = get_logger(__name__)

ReadinessCheck = Callable[[float], Awaitable[None]]
"""Raises if the backend is not usable; receives the seconds it has to answer."""

OK = "ok"
TIMEOUT = "timeout"
UNAVAILABLE = "unavailable"


async def _run_one(name: str, check: ReadinessCheck, within_seconds: float) -> str:
    try:
        async with asyncio.timeout(within_seconds):
            await check(within_seconds)
    except TimeoutError:
        log.warning("readiness_check_failed", check=name, reason=TIMEOUT)
        return TIMEOUT
    except Exception as exc:
        log.warning("readiness_check_failed", check=name, error_type=type(exc).__name__)
        return UNAVAILABLE
    return OK


async def run_checks(checks: Mapping[str, ReadinessCheck], within_seconds: float) -> dict[str, str]:
    names = list(checks)
    results = await asyncio.gather(*(_run_one(n, checks[n], within_seconds) for n in names))
    return dict(zip(names, results, strict=True))
