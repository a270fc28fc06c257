"""The outermost layer: who the request is, how it ended, and what every response carries.

For each HTTP request it binds the request id (kept from a valid incoming `X-Request-ID`,
otherwise generated) so every log line names it; appends the request id and the security
headers to the response; answers a last-resort 500 for an exception nothing else claimed
(the traceback goes to the log, nothing internal to the client); and records the outcome
once, as an access-log line and as metrics.

These are one layer on purpose: they all need the same facts (status, duration, route
template) at the same two moments, and on a small response each extra ASGI layer and `send`
wrapper costs a measurable share of the request (see bench/README.md).
"""

from __future__ import annotations

import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from keel.core.exception_handlers import unexpected_error_response
from keel.core.metrics import METRICS_PATH, HttpMetrics
from keel.core.middleware.access_log import log_request
from keel.core.middleware.routes import route_template
from keel.core.middleware.security_headers import (
    API_HEADERS,
    DOCS_HEADERS,
    HSTS_HEADER,
    security_headers,
)
from keel.core.request_id import bind_request_id, choose_request_id, reset_request_id

REQUEST_ID_KEY = b"x-request-id"


def _incoming_request_id(scope: Scope) -> bytes | None:
    for name, value in scope["headers"]:
        if name == REQUEST_ID_KEY:
            return bytes(value)
    return None


class RequestContextMiddleware:
    def __init__(
        self, app: ASGIApp, *, metrics: HttpMetrics | None, docs_prefixes: tuple[str, ...]
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.docs_prefixes = docs_prefixes
        # Every header this layer may add: a response that already sets one keeps its own.
        self.added_names = frozenset(
            name for variant in (API_HEADERS, DOCS_HEADERS, HSTS_HEADER) for name, _ in variant
        ) | {REQUEST_ID_KEY}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        request_id = choose_request_id(_incoming_request_id(scope))
        token = bind_request_id(request_id)
        try:
            if scope["type"] == "http":
                await self._serve_http(scope, receive, send, request_id)
            else:
                await self.app(scope, receive, send)
        finally:
            reset_request_id(token)

    async def _serve_http(self, scope: Scope, receive: Receive, send: Send, rid: str) -> None:
        started = time.perf_counter()
        status = 0
        protective = security_headers(
            scope["path"], https=scope.get("scheme") == "https", docs_prefixes=self.docs_prefixes
        )
        extra_headers = (*protective, (REQUEST_ID_KEY, rid.encode()))

        added_names = self.added_names

        async def send_with_context(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", ()))
                present = {name.lower() for name, _ in headers} & added_names
                if present:  # rare: the app set one of ours itself
                    headers.extend(h for h in extra_headers if h[0] not in present)
                else:
                    headers.extend(extra_headers)
                message["headers"] = headers
            await send(message)

        metrics = None if scope["path"] == METRICS_PATH else self.metrics
        if metrics is not None:
            metrics.in_flight.inc()
        try:
            await self.app(scope, receive, send_with_context)
        except Exception as exc:
            if status:
                raise  # too late for an error body; the server aborts the response
            await unexpected_error_response(exc)(scope, receive, send_with_context)
        finally:
            duration = time.perf_counter() - started
            final_status = status or 500
            route = route_template(scope, final_status)
            if metrics is not None:
                metrics.in_flight.dec()
                metrics.observe(route, scope["method"], final_status, duration)
            log_request(scope["method"], route, final_status, duration)
