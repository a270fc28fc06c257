"""Read one file field of a multipart body as a stream, without spooling it anywhere.

Starlette's form parser writes every file to a temporary file before the endpoint runs; an
upload endpoint that must enforce a size limit as the bytes arrive, hash them on the way and
hand them straight to storage needs them as they come. python-multipart does the parsing;
this turns its callbacks into an async iterator of the `file` part's bytes.
"""

from __future__ import annotations

import functools
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, ParamSpec, TypeVar

from fastapi import APIRouter
from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import ClientDisconnect, Request

from keel.core.errors import BadRequestError, UnsupportedMediaTypeError, ValidationFailedError

FILE_FIELD_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["file"],
    "properties": {"file": {"type": "string", "format": "binary"}},
}
"""OpenAPI for a body read with `read_file_part` (FastAPI cannot infer it): /docs shows a
file picker."""

P = ParamSpec("P")
R = TypeVar("R")


@contextmanager
def client_may_leave() -> Iterator[None]:
    """A client that goes away in the middle of its upload is a 400 (it will not read it),
    not a 500: the streamed body ends with Starlette's `ClientDisconnect`."""
    try:
        yield
    except ClientDisconnect:
        raise BadRequestError("The client went away during the upload") from None


def upload_route(
    router: APIRouter,
    path: str,
    summary: str,
    status_code: int,
    *,
    also: Mapping[str, dict[str, Any]] | None = None,
) -> Callable[[Callable[P, Awaitable[R]]], Callable[P, Awaitable[R]]]:
    """Register a POST whose body is a multipart `file` field the handler reads itself
    (`read_file_part`): documented as such, with `also` adding other media types it takes
    (content type → schema), and run in `client_may_leave`."""
    content = {"multipart/form-data": {"schema": FILE_FIELD_SCHEMA}}
    content.update({media_type: {"schema": schema} for media_type, schema in (also or {}).items()})
    documented = {"requestBody": {"required": True, "content": content}}

    def register(handler: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
        @functools.wraps(handler)
        async def receive(*args: P.args, **kwargs: P.kwargs) -> R:
            with client_may_leave():
                return await handler(*args, **kwargs)

        router.post(path, status_code=status_code, summary=summary, openapi_extra=documented)(
            receive
        )
        return receive

    return register


MAX_BOUNDARY_LENGTH = 70
"""RFC 2046 §5.1.1: a boundary is 1 to 70 characters."""


@dataclass(frozen=True, slots=True)
class FilePart:
    filename: str
    content_type: str
    chunks: AsyncIterator[bytes]


class _Events:
    """Collects parser callbacks as ("headers", {...}) / ("data", b"") / ("end",) / ("done",)."""

    def __init__(self) -> None:
        self.queue: deque[tuple[str, object]] = deque()
        self._headers: dict[bytes, bytes] = {}
        self._name = b""
        self._value = b""

    def callbacks(self) -> dict[str, object]:
        return {
            "on_part_begin": self._part_begin,
            "on_part_data": self._part_data,
            "on_part_end": lambda: self.queue.append(("end", None)),
            "on_header_field": self._header_field,
            "on_header_value": self._header_value,
            "on_header_end": self._header_end,
            "on_headers_finished": lambda: self.queue.append(("headers", self._headers)),
            "on_end": lambda: self.queue.append(("done", None)),
        }

    def _part_begin(self) -> None:
        self._headers = {}

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        self.queue.append(("data", data[start:end]))

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        self._name += data[start:end]

    def _header_value(self, data: bytes, start: int, end: int) -> None:
        self._value += data[start:end]

    def _header_end(self) -> None:
        self._headers[self._name.lower()] = self._value
        self._name = self._value = b""


async def read_file_part(request: Request, field: str = "file") -> FilePart:
    """The `field` part's name, declared type and bytes (read on demand from the request)."""
    media_type, params = parse_options_header(request.headers.get("content-type"))
    if media_type != b"multipart/form-data" or not params.get(b"boundary"):
        raise UnsupportedMediaTypeError(
            "Send the file as multipart/form-data", details={"allowed": ["multipart/form-data"]}
        )
    if len(params[b"boundary"]) > MAX_BOUNDARY_LENGTH:
        # python-multipart raises for boundaries past its own limit (256) as it is built.
        raise BadRequestError(
            f"The multipart boundary must be at most {MAX_BOUNDARY_LENGTH} characters (RFC 2046)"
        )
    events = _Events()
    parser = MultipartParser(params[b"boundary"], events.callbacks())  # type: ignore[arg-type]
    body = request.stream()

    async def next_event() -> tuple[str, object]:
        while not events.queue:
            try:
                chunk = await anext(body)
            except StopAsyncIteration:
                raise BadRequestError("The multipart body ended before it was complete") from None
            try:
                parser.write(chunk)
            except MultipartParseError:
                raise BadRequestError("The multipart body is malformed") from None
        return events.queue.popleft()

    while True:
        kind, value = await next_event()
        if kind == "done":
            raise ValidationFailedError.field(("body", field), "Field required", "missing")
        if kind != "headers":
            continue
        headers = value
        assert isinstance(headers, dict)
        _, disposition = parse_options_header(headers.get(b"content-disposition"))
        if disposition.get(b"name") == field.encode() and b"filename" in disposition:
            break

    async def chunks() -> AsyncIterator[bytes]:
        while True:
            kind, data = await next_event()
            if kind == "data":
                assert isinstance(data, bytes)
                yield data
            elif kind in {"end", "done"}:
                return

    return FilePart(
        filename=disposition[b"filename"].decode(errors="replace"),
        content_type=headers.get(b"content-type", b"").decode("latin-1"),
        chunks=chunks(),
    )
