"""GZip for clients that ask for it, at no cost for those that do not.

Starlette's middleware wraps every response, even for clients that never send
`Accept-Encoding: gzip` (load balancers, probes, most service-to-service calls); that costs
more than the rest of the stack on a small response. This subclass steps aside for them.
Compressed responses still carry `Vary: Accept-Encoding`.
"""

from __future__ import annotations

from collections.abc import Awaitable

from starlette.middleware.gzip import GZipMiddleware as StarletteGZipMiddleware
from starlette.types import Receive, Scope, Send


class GZipMiddleware(StarletteGZipMiddleware):
    # Starlette's returns a coroutine; any awaitable is a valid ASGI app's result.
    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:  # type: ignore[override]
        """Steps aside without a frame of its own (core/middleware/__init__.py)."""
        if scope["type"] == "http" and _accepts_gzip(scope):
            return super().__call__(scope, receive, send)
        return self.app(scope, receive, send)


def _accepts_gzip(scope: Scope) -> bool:
    for name, value in scope["headers"]:
        if name == b"accept-encoding":
            return b"gzip" in value
    return False
