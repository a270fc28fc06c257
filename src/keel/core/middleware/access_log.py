"""One structured log line per request: method, route template, status, duration, request id.

The route template (`/api/v1/orders/{order_id}`) rather than the raw path keeps log queries and
dashboards grouped by endpoint; the request id comes from the logging context.
"""

from __future__ import annotations

import logging

from keel.core.logging import get_logger

log = get_logger("keel.access")


def log_request(method: str, route: str, status: int, duration_seconds: float) -> None:
    if log.is_enabled_for(logging.INFO):  # skip building the event when INFO is off
        log.info(
            "request",
            method=method,
            route=route,
            status=status,
            duration_ms=round(duration_seconds * 1000, 2),
        )
