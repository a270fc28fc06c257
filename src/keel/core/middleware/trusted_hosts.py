"""Reject requests whose Host header is not one of ours (DNS rebinding, cache poisoning).

Starlette's TrustedHostMiddleware answers in plain text; Keel needs the SPEC error body on
every error, so this small equivalent renders a 400 through the shared error response.
"""

from __future__ import annotations

from collections.abc import Awaitable, Sequence

from starlette.types import ASGIApp, Receive, Scope, Send

from keel.core.errors import BadRequestError
from keel.core.exception_handlers import error_response
from keel.core.operations import PROBE_PATHS


class TrustedHostMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        allowed_hosts: Sequence[str],
        exempt_paths: frozenset[str] = PROBE_PATHS,
    ) -> None:
        self.app = app
        self.exempt_paths = exempt_paths
        self.exact = {h.lower() for h in allowed_hosts if not h.startswith("*.")}
        self.suffixes = tuple(h[1:].lower() for h in allowed_hosts if h.startswith("*."))
        self.allow_any = "*" in self.exact

    def is_allowed(self, host: str) -> bool:
        return self.allow_any or host in self.exact or host.endswith(self.suffixes)

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        """Hands an allowed scope on without a frame of its own (core/middleware/__init__.py)."""
        if (
            scope["type"] not in ("http", "websocket")
            or self.allow_any
            or scope["path"] in self.exempt_paths
            or self.is_allowed(_hostname(_host_header(scope)))
        ):
            return self.app(scope, receive, send)
        return error_response(BadRequestError("Invalid host header"))(scope, receive, send)


def _host_header(scope: Scope) -> str:
    for name, value in scope["headers"]:
        if name == b"host":
            return bytes(value).decode("latin-1")
    return ""


def _hostname(host_header: str) -> str:
    """`example.com:8000` -> `example.com`; `[::1]:8000` -> `[::1]`."""
    if host_header.startswith("["):
        return host_header[: host_header.find("]") + 1].lower()
    return host_header.split(":", 1)[0].lower()
