"""Every request ends with an outcome that is logged and counted, even when the app crashed.

One layer does three things that all need the same facts (status, duration, route template):
the access-log line, the HTTP metrics, and the last-resort 500 for an exception no handler
claimed. Folding them into one layer keeps a single `send` wrapper and timer on the hot path.
It sits inside the security-headers and request-id layers, so a 500 still carries both, and
nothing internal (traceback, SQL, paths) reaches the client; the traceback goes to the log.
"""

from __future__ import annotations

import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from keel.core.exception_handlers import unexpected_error_response
from keel.core.metrics import METRICS_PATH, HttpMetrics
from keel.core.middleware.access_log import log_request
from keel.core.middleware.routes import route_template


class RequestTelemetryMiddleware:
    def __init__(self, app: ASGIApp, *, metrics: HttpMetrics | None) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 0

        async def send_and_record(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        metrics = None if scope["path"] == METRICS_PATH else self.metrics
        if metrics is not None:
            metrics.in_flight.inc()
        try:
            await self.app(scope, receive, send_and_record)
        except Exception as exc:
            if status:
                raise  # too late for an error body; the server aborts the response
            await unexpected_error_response(exc)(scope, receive, send_and_record)
        finally:
            duration = time.perf_counter() - started
            final_status = status or 500
            route = route_template(scope, final_status)
            if metrics is not None:
                metrics.in_flight.dec()
                metrics.observe(route, scope["method"], final_status, duration)
            log_request(scope["method"], route, final_status, duration)
