"""`keel worker`: a process that runs jobs from Redis until SIGTERM or SIGINT.

It opens the same resources the API does (`core.lifespan.open_state`), consumes jobs, and on
a stop signal gives back the jobs it was running, so another worker takes them at once
rather than after their lease runs out.
"""

from __future__ import annotations

import asyncio
import signal

from keel.core.config import CoreSettings
from keel.core.jobs.handlers import JobHandlers
from keel.core.lifespan import open_state
from keel.core.logging import get_logger
from keel.core.tracing import setup_tracing, tracing_config
from keel.features.registry import job_handlers, maintenance, resources

log = get_logger(__name__)


async def run_worker(settings: CoreSettings, handlers: JobHandlers | None = None) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    tracing = setup_tracing(tracing_config(settings))
    try:
        async with open_state(
            settings,
            job_handlers() if handlers is None else handlers,
            consume_jobs=True,
            maintenance=maintenance(),
            tracing=tracing,
            resources=resources(),
        ):
            log.info(
                "worker_ready", queue=settings.job_queue_name, concurrency=settings.job_concurrency
            )
            await stop.wait()
            log.info("worker_stopping")
    finally:
        if tracing is not None:
            await tracing.aclose()  # after the jobs were handed back: their spans go too
