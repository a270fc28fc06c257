"""Refuse oversized request bodies early.

A declared `Content-Length` above the limit is answered 413 before a byte of the body is read;
a declared length within it passes untouched (the server enforces it). A chunked body is
counted as it streams in and cut off the moment it crosses the limit, so the app never buffers
more than the limit. Upload routes get their own (larger) limit by prefix.
"""

from __future__ import annotations

from collections.abc import Mapping

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from keel.core.errors import PayloadTooLargeError
from keel.core.exception_handlers import error_response


class BodySizeLimitMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        max_bytes: int,
        overrides: Mapping[str, int] | None = None,
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        # Longest prefix first, so /api/v1/files/x beats /api/v1.
        self.overrides = sorted((overrides or {}).items(), key=lambda kv: -len(kv[0]))

    def limit_for(self, path: str) -> int:
        for prefix, limit in self.overrides:
            if path.startswith(prefix):
                return limit
        return self.max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope["path"])
        declared, chunked = _body_framing(scope)
        if declared is not None and declared > limit:
            response = error_response(_too_large(limit))
            await response(scope, receive, send)
            return
        if not chunked:
            # No body, or a declared length within the limit that the server enforces.
            await self.app(scope, receive, send)
            return

        received = 0
        exceeded = False
        replaced = False

        async def counting_receive() -> Message:
            nonlocal received, exceeded
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    exceeded = True
                    raise _too_large(limit)
            return message

        async def guarded_send(message: Message) -> None:
            # FastAPI reports any failure while parsing a body as a 400; once the limit was
            # crossed, the app's answer is swapped for the 413 it really is.
            nonlocal replaced
            if not exceeded:
                await send(message)
            elif not replaced and message["type"] == "http.response.start":
                replaced = True
                await error_response(_too_large(limit))(scope, receive, send)

        await self.app(scope, counting_receive, guarded_send)


def _too_large(limit: int) -> PayloadTooLargeError:
    return PayloadTooLargeError(f"Request body exceeds {limit} bytes", details={"max_bytes": limit})


def _body_framing(scope: Scope) -> tuple[int | None, bool]:
    """(declared Content-Length, whether the body is chunked / of unknown length)."""
    declared: int | None = None
    chunked = False
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                declared = int(value)
            except ValueError:
                chunked = True  # unparsable: count what really arrives
        elif name == b"transfer-encoding":
            chunked = True
    return declared, chunked
