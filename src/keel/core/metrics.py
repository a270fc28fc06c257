"""Prometheus metrics: HTTP traffic by route template, latency, in-flight requests, DB pool.

With several worker processes (`keel serve --workers N`) each process writes its samples to
`PROMETHEUS_MULTIPROC_DIR` and `/metrics` aggregates them, so any worker answers for all.
Each app instance gets its own registry so tests can build many apps in one process.
"""

from __future__ import annotations

import hmac
import os
import time
from typing import Annotated, Any

from fastapi import FastAPI, Header
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client import multiprocess as prometheus_multiprocess
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import ConnectionPoolEntry
from starlette.responses import Response

from keel.core.errors import UnauthorizedError
from keel.core.pool import checkout_began

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
METRICS_PATH = "/metrics"
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
POOL_BUCKETS = (0.0005, 0.001, 0.0025, *LATENCY_BUCKETS[:-1])
"""A connection is usually lent at once or after a few milliseconds: finer at the low end."""
_HELD_SINCE = "keel_held_since"


class PoolMetrics:
    """Connection-pool gauges kept current by pool events (cheap, and exact per process), and
    how long connections are waited for and held.

    The wait is from asking the pool to having the connection (a reconnect included), known
    on the fair pool of server databases (core/pool.py); the hold is from checkout to checkin,
    the time a request or job keeps a connection from everyone else.
    """

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
        self.wait = Histogram(
            "keel_db_pool_wait_seconds",
            "Time from asking the pool for a database connection to having one.",
            registry=registry,
            buckets=POOL_BUCKETS,
        )
        self.hold = Histogram(
            "keel_db_pool_hold_seconds",
            "Time a database connection stays lent before it returns to the pool.",
            registry=registry,
            buckets=POOL_BUCKETS,
        )

    def watch(self, engine: AsyncEngine, pool_size: int) -> None:
        self.size.set(pool_size)
        pool = engine.sync_engine.pool

        def on_connect(*_: Any) -> None:
            self.open.inc()

        def on_close(*_: Any) -> None:
            self.open.dec()

        def on_checkout(_: Any, record: ConnectionPoolEntry, *__: Any) -> None:
            self.checked_out.inc()
            now = time.perf_counter()
            began = checkout_began(record)
            if began is not None:
                self.wait.observe(now - began)
            if record.record_info is not None:
                record.record_info[_HELD_SINCE] = now

        def on_checkin(_: Any, record: ConnectionPoolEntry) -> None:
            self.checked_out.dec()
            since = (record.record_info or {}).pop(_HELD_SINCE, None)
            if since is not None:
                self.hold.observe(time.perf_counter() - since)

        event.listen(pool, "connect", on_connect)
        event.listen(pool, "close", on_close)
        event.listen(pool, "close_detached", on_close)
        event.listen(pool, "checkout", on_checkout)
        event.listen(pool, "checkin", on_checkin)


class HttpMetrics:
    """Requests by route template and status, latency, and requests in flight."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "http_requests_total",
            "HTTP requests answered, by route template, method and status.",
            ("handler", "method", "status"),
            registry=registry,
        )
        self.latency = Histogram(
            "http_request_duration_seconds",
            "Time to answer an HTTP request, by route template and method.",
            ("handler", "method"),
            registry=registry,
            buckets=LATENCY_BUCKETS,
        )
        self.in_flight = Gauge(
            "http_requests_in_flight",
            "HTTP requests being served right now.",
            registry=registry,
            multiprocess_mode="livesum",
        )

        # (route, method, status) -> the labelled counter and histogram. `labels()` validates
        # and joins its arguments on every call; the children it returns never change.
        self._children: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}

    def observe(self, route: str, method: str, status: int, duration_seconds: float) -> None:
        key = (route, method, status)
        children = self._children.get(key)
        if children is None:
            children = (
                self.requests.labels(route, method, str(status)),
                self.latency.labels(route, method),
            )
            self._children[key] = children
        children[0].inc()
        children[1].observe(duration_seconds)


def install_metrics_endpoint(
    app: FastAPI, registry: CollectorRegistry, token: str | None = None
) -> None:
    """`/metrics` in Prometheus text format (requests are recorded by the telemetry layer).

    With a `token` (`KEEL_METRICS_TOKEN`) only `Authorization: Bearer <token>` is answered:
    route names, traffic and pool sizes are a map of the service for whoever can read them.
    """
    expected = f"Bearer {token}".encode() if token else None

    @app.get(METRICS_PATH, include_in_schema=False)
    async def metrics(authorization: Annotated[str | None, Header()] = None) -> Response:
        if expected is not None and not hmac.compare_digest(
            (authorization or "").encode(), expected
        ):
            raise UnauthorizedError("Metrics need the metrics token")
        return Response(generate_latest(_scrape_registry(registry)), media_type=CONTENT_TYPE_LATEST)


def _scrape_registry(registry: CollectorRegistry) -> CollectorRegistry:
    """With several worker processes, aggregate every process's samples from the shared dir."""
    if not os.environ.get(MULTIPROC_ENV):
        return registry
    aggregate = CollectorRegistry()
    prometheus_multiprocess.MultiProcessCollector(aggregate)  # type: ignore[no-untyped-call]
    return aggregate


def mark_process_dead() -> None:
    """Drop this process's live gauges from the shared directory when it shuts down."""
    if os.environ.get(MULTIPROC_ENV):
        prometheus_multiprocess.mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]
