"""GZip for clients that ask for it, at no cost for those that do not.

Starlette's middleware wraps every response, even for clients that never send
`Accept-Encoding: gzip` (load balancers, probes, most service-to-service calls); that costs
more than the rest of the stack on a small response. This subclass steps aside for them.
Compressed responses still carry `Vary: Accept-Encoding`.
"""

from __future__ import annotations

from starlette.middleware.gzip import GZipMiddleware as StarletteGZipMiddleware
from starlette.types import Receive, Scope, Send


class GZipMiddleware(StarletteGZipMiddleware):
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and _accepts_gzip(scope):
            await super().__call__(scope, receive, send)
            return
        await self.app(scope, receive, send)


def _accepts_gzip(scope: Scope) -> bool:
    for name, value in scope["headers"]:
        if name == b"accept-encoding":
            return b"gzip" in value
    return False
