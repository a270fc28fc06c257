"""Prometheus metrics: HTTP traffic by route template, latency, in-flight requests, DB pool.

With several worker processes (`keel serve --workers N`) each process writes its samples to
`PROMETHEUS_MULTIPROC_DIR` and `/metrics` aggregates them, so any worker answers for all.
Each app instance gets its own registry so tests can build many apps in one process.
"""

from __future__ import annotations

import os
from typing import Any

from fastapi import FastAPI
from prometheus_client import CollectorRegistry, Gauge
from prometheus_client import multiprocess as prometheus_multiprocess
from prometheus_fastapi_instrumentator import Instrumentator
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.types import ASGIApp, Receive, Scope, Send

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


class PoolMetrics:
    """Connection-pool gauges kept current by pool events (cheap, and exact per process)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.checked_out = Gauge(
            "keel_db_pool_checked_out",
            "Database connections currently lent to requests or jobs.",
            registry=registry,
            multiprocess_mode="livesum",
        )
        self.open = Gauge(
            "keel_db_pool_open",
            "Database connections currently open (idle or lent).",
            registry=registry,
            multiprocess_mode="livesum",
        )
        self.size = Gauge(
            "keel_db_pool_size",
            "Configured pool size per process.",
            registry=registry,
            multiprocess_mode="max",
        )

    def watch(self, engine: AsyncEngine, pool_size: int) -> None:
        self.size.set(pool_size)
        pool = engine.sync_engine.pool

        def on_connect(*_: Any) -> None:
            self.open.inc()

        def on_close(*_: Any) -> None:
            self.open.dec()

        def on_checkout(*_: Any) -> None:
            self.checked_out.inc()

        def on_checkin(*_: Any) -> None:
            self.checked_out.dec()

        event.listen(pool, "connect", on_connect)
        event.listen(pool, "close", on_close)
        event.listen(pool, "close_detached", on_close)
        event.listen(pool, "checkout", on_checkout)
        event.listen(pool, "checkin", on_checkin)


def install_metrics(app: FastAPI, registry: CollectorRegistry) -> None:
    """Add the HTTP instrumentation middleware and the `/metrics` endpoint."""
    instrumentator = Instrumentator(
        should_group_status_codes=False,
        should_ignore_untemplated=False,
        should_group_untemplated=True,
        # The library's in-progress gauge always lands in the global registry (two apps in
        # one process collide), so Keel counts in-flight requests itself, below.
        should_instrument_requests_inprogress=False,
        excluded_handlers=["^/metrics$"],
        registry=registry,
    )
    instrumentator.instrument(app).expose(app, endpoint="/metrics", include_in_schema=False)
    in_flight = Gauge(
        "http_requests_in_flight",
        "HTTP requests being served right now.",
        registry=registry,
        multiprocess_mode="livesum",
    )
    app.add_middleware(InFlightMiddleware, gauge=in_flight)


class InFlightMiddleware:
    def __init__(self, app: ASGIApp, *, gauge: Gauge) -> None:
        self.app = app
        self.gauge = gauge

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        with self.gauge.track_inprogress():
            await self.app(scope, receive, send)


def mark_process_dead() -> None:
    """Drop this process's live gauges from the shared directory when it shuts down."""
    if os.environ.get(MULTIPROC_ENV):
        prometheus_multiprocess.mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]
