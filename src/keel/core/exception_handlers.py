"""Turn every exception, from any layer, into the one SPEC error body.

`{"error": {"code", "message", "details", "request_id"}}` for AppError subclasses, FastAPI's
validation errors, Starlette's 404/405, HTTPException raised by libraries, an unreachable
database (503 + Retry-After) and anything unexpected (a generic 500; the traceback goes to the
log, never to the client).
"""

from __future__ import annotations

from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.routing import iter_route_contexts
from sqlalchemy import exc as sa_exc
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from keel.core.error_reporting import report_exception
from keel.core.errors import (
    STATUS_CODES,
    AppError,
    InternalError,
    ServiceUnavailableError,
    ValidationFailedError,
)
from keel.core.logging import get_logger
from keel.core.request_id import REQUEST_ID_HEADER, get_request_id

log = get_logger(__name__)

QUERY_CANCELED = "57014"
"""PostgreSQL's SQLSTATE for a statement cancelled by `statement_timeout`."""


def error_response(error: AppError, *, request_id_header: bool = False) -> JSONResponse:
    """The SPEC error body. `request_id_header` is for responses that bypass the request-id
    middleware (Starlette renders last-resort 500s outside every user middleware)."""
    return render_error(
        error.status_code,
        error.code,
        error.message,
        details=error.details,
        headers=error.headers,
        request_id_header=request_id_header,
    )


def error_body(error: AppError) -> dict[str, Any]:
    """The SPEC error body for `error` (also what idempotent replays store)."""
    return _body(error.code, error.message, error.details)


def _body(code: str, message: str, details: Mapping[str, Any] | None) -> dict[str, Any]:
    return {
        "error": {
            "code": code,
            "message": message,
            "details": dict(details or {}),
            "request_id": get_request_id(),
        }
    }


def render_error(
    status_code: int,
    code: str,
    message: str,
    *,
    details: Mapping[str, Any] | None = None,
    headers: Mapping[str, str] | None = None,
    request_id_header: bool = False,
) -> JSONResponse:
    request_id = get_request_id()
    response_headers = dict(headers or {})
    if request_id and request_id_header:
        response_headers[REQUEST_ID_HEADER] = request_id
    body = _body(code, message, details)
    return JSONResponse(body, status_code=status_code, headers=response_headers)


def is_backend_unavailable(exc: BaseException) -> bool:
    """True for failures that mean "the database is not reachable now", not "the query is bad"."""
    if isinstance(exc, sa_exc.TimeoutError):  # pool exhausted
        return True
    if isinstance(exc, sa_exc.DBAPIError):
        if exc.connection_invalidated:
            return True
        if getattr(exc.orig, "sqlstate", None) == QUERY_CANCELED:
            return True  # statement_timeout: the database is too slow to answer in time
        return isinstance(
            exc, sa_exc.OperationalError | sa_exc.InterfaceError
        ) and _looks_like_connection_failure(exc)
    return isinstance(exc, ConnectionError | TimeoutError | OSError)


def _looks_like_connection_failure(exc: sa_exc.DBAPIError) -> bool:
    original = exc.orig
    if isinstance(original, ConnectionError | TimeoutError | OSError):
        return True
    name = type(original).__name__.lower()
    text = str(original).lower()
    if "database is locked" in text:  # SQLite busy beyond its timeout: retryable
        return True
    return any(word in name for word in ("connection", "cannotconnect")) or any(
        phrase in text
        for phrase in ("connection refused", "connection was closed", "could not connect")
    )


async def _app_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, AppError)
    return error_response(exc)


async def _request_validation(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    return error_response(ValidationFailedError.from_pydantic(exc.errors()))


def allowed_methods(request: Request) -> str:
    """Every method the request's path answers to. The router's 405 names only the methods of
    the first route whose path matched, so `/orders` (POST and GET, two routes) would say
    `Allow: POST`; RFC 9110 asks for the full list."""
    path, root = request.scope["path"], request.scope.get("root_path", "")
    if root and path.startswith(root):
        path = path[len(root) :]  # routes match the path below the mount point
    methods: set[str] = set()
    for route in iter_route_contexts(request.app.router.routes):
        pattern = getattr(route, "path_regex", None)
        if pattern is not None and pattern.match(path):
            methods.update(route.methods or ())
    return ", ".join(sorted(methods))


async def _http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    error_class = STATUS_CODES.get(exc.status_code)
    status = HTTPStatus(exc.status_code)
    message: str | None = exc.detail if isinstance(exc.detail, str) else None
    headers: Mapping[str, str] = exc.headers or {}
    if exc.status_code == HTTPStatus.METHOD_NOT_ALLOWED and "Allow" in headers:
        headers = {**headers, "Allow": allowed_methods(request) or headers["Allow"]}
    if error_class is None:  # a status outside the SPEC table, e.g. 416 from a file response
        return render_error(status.value, status.name, message or status.phrase, headers=headers)
    if message == status.phrase:
        message = None  # prefer our wording ("Not found") over Starlette's bare phrase
    return error_response(error_class(message, headers=headers))


async def _backend_or_unexpected(request: Request, exc: Exception) -> Response:
    if is_backend_unavailable(exc):
        log.warning(
            "backend_unavailable",
            error_type=type(exc).__name__,
            path=request.url.path,
        )
        return error_response(ServiceUnavailableError())
    return unexpected_error_response(exc)


def unexpected_error_response(
    exc: BaseException, *, request_id_header: bool = False
) -> JSONResponse:
    log.error("unhandled_exception", exc_info=exc)
    report_exception(exc)
    return error_response(InternalError(), request_id_header=request_id_header)


async def _unexpected(_: Request, exc: Exception) -> Response:
    return unexpected_error_response(exc, request_id_header=True)


def register_exception_handlers(app: FastAPI) -> None:
    app.add_exception_handler(AppError, _app_error)
    app.add_exception_handler(RequestValidationError, _request_validation)
    app.add_exception_handler(StarletteHTTPException, _http_exception)
    for backend_error in (sa_exc.DBAPIError, sa_exc.TimeoutError, OSError, TimeoutError):
        app.add_exception_handler(backend_error, _backend_or_unexpected)
    # Last resort for exceptions raised outside the routed app (e.g. inside a middleware).
    app.add_exception_handler(Exception, _unexpected)
