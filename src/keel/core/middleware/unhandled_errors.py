"""The innermost safety net: an exception no handler claimed becomes a logged, generic 500.

It sits inside the other middleware so that the 500 still gets the request id, the security
headers and an access-log line, and nothing internal (traceback, SQL, paths) reaches the client.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from keel.core.exception_handlers import unexpected_error_response


class UnhandledErrorMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as exc:
            if started:
                raise  # too late for an error body; the server aborts the response
            await unexpected_error_response(exc)(scope, receive, send)
