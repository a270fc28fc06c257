"""One structured log line per request: method, route template, status, duration, request id.

The route template (`/api/v1/orders/{order_id}`) rather than the raw path keeps log queries and
dashboards grouped by endpoint; the request id comes from the logging context.
"""

from __future__ import annotations

import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from keel.core.logging import get_logger

log = get_logger("keel.access")

UNMATCHED_ROUTE = "<unmatched>"


def route_template(scope: Scope, status: int) -> str:
    """The matched route's template; for plain Starlette routes and mounts (docs, static
    files), which FastAPI does not record in the scope, the raw path; for a 404 a fixed
    label, so scanners probing random URLs cannot blow up log cardinality."""
    route = scope.get("route")
    path = getattr(route, "path_format", None)
    if path:
        return str(path)
    return UNMATCHED_ROUTE if status == 404 else str(scope["path"])


class AccessLogMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what the client sees if the app dies before answering

        async def send_and_record(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_record)
        finally:
            log.info(
                "request",
                method=scope["method"],
                route=route_template(scope, status),
                status=status,
                duration_ms=round((time.perf_counter() - started) * 1000, 2),
            )
