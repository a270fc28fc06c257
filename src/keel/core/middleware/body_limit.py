"""Refuse oversized request bodies early.

A declared `Content-Length` above the limit is answered 413 before a byte of the body is read;
a declared length within it passes untouched (the server enforces it). A chunked body is
counted as it streams in and cut off the moment it crosses the limit, so the app never buffers
more than the limit. Upload routes get their own (larger) limit by prefix: the file limit a
client is told about, plus room for the multipart envelope around it. Core names no feature's
URL: a feature whose bodies are uploads builds its router as an `UploadRouter`, and the API
module hands those routers' prefixes to the middleware.
"""

from __future__ import annotations

from collections.abc import Awaitable, Iterable, Mapping
from dataclasses import dataclass

from fastapi import APIRouter
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from keel.core.errors import PayloadTooLargeError
from keel.core.exception_handlers import error_response


class UploadRouter(APIRouter):
    """A feature router whose request bodies are file uploads: every path under its prefix
    gets the upload limit (KEEL_MAX_UPLOAD_BYTES and the multipart envelope) instead of the
    request limit. Decided by prefix, before routing, so a declared Content-Length over the
    limit is refused before a byte of the body is read."""


def upload_prefixes(prefix: str, included: Iterable[APIRouter]) -> tuple[str, ...]:
    """The full prefixes of the `UploadRouter`s among the routers included under `prefix`."""
    return tuple(prefix + router.prefix for router in included if isinstance(router, UploadRouter))


@dataclass(frozen=True, slots=True)
class UploadLimit:
    """A route's file limit (the setting, which is what the client is told) and the room the
    multipart envelope around such a file needs (enforced on top, never quoted)."""

    file_bytes: int
    envelope_bytes: int


@dataclass(frozen=True, slots=True)
class _Limit:
    enforced: int
    subject: str
    quoted: int

    def error(self) -> PayloadTooLargeError:
        return PayloadTooLargeError(
            f"{self.subject} exceeds {self.quoted} bytes", details={"max_bytes": self.quoted}
        )


class BodySizeLimitMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        max_bytes: int,
        overrides: Mapping[str, UploadLimit] | None = None,
    ) -> None:
        self.app = app
        self.default = _Limit(max_bytes, "Request body", max_bytes)
        # Longest prefix first, so /api/v1/files/x beats /api/v1.
        self.overrides = [
            (prefix, _Limit(u.file_bytes + u.envelope_bytes, "The file", u.file_bytes))
            for prefix, u in sorted((overrides or {}).items(), key=lambda kv: -len(kv[0]))
        ]

    def limit_for(self, path: str) -> _Limit:
        for prefix, limit in self.overrides:
            if path.startswith(prefix):
                return limit
        return self.default

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        """Steps aside without a frame of its own (core/middleware/__init__.py)."""
        if scope["type"] != "http":
            return self.app(scope, receive, send)
        return self._guard(scope, receive, send)

    async def _guard(self, scope: Scope, receive: Receive, send: Send) -> None:
        limit = self.limit_for(scope["path"])
        declared, chunked = _body_framing(scope)
        if declared is not None and declared > limit.enforced:
            response = error_response(limit.error())
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
                if received > limit.enforced:
                    exceeded = True
                    raise limit.error()
            return message

        async def guarded_send(message: Message) -> None:
            # FastAPI reports any failure while parsing a body as a 400; once the limit was
            # crossed, the app's answer is swapped for the 413 it really is.
            nonlocal replaced
            if not exceeded:
                await send(message)
            elif not replaced and message["type"] == "http.response.start":
                replaced = True
                await error_response(limit.error())(scope, receive, send)

        await self.app(scope, counting_receive, guarded_send)


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
