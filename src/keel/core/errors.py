"""The one exception hierarchy. Raise these anywhere; `core.exception_handlers` renders them.

Each class is one row of the SPEC error table, so a service says *what* went wrong and the
HTTP shape (status, code, headers) follows from the type.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar


class AppError(Exception):
    """An error the client should see, with a stable machine-readable code."""

    status_code: ClassVar[int] = 500
    code: ClassVar[str] = "INTERNAL_ERROR"
    default_message: ClassVar[str] = "Internal server error"

    def __init__(
        self,
        message: str | None = None,
        *,
        details: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.message = message or self.default_message
        self.details: dict[str, Any] = dict(details or {})
        self.headers: dict[str, str] = dict(headers or {})
        super().__init__(self.message)


class BadRequestError(AppError):
    status_code = 400
    code = "BAD_REQUEST"
    default_message = "Bad request"


class UnauthorizedError(AppError):
    status_code = 401
    code = "UNAUTHORIZED"
    default_message = "Not authenticated"

    def __init__(self, message: str | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.headers.setdefault("WWW-Authenticate", "Bearer")


class PaymentDeclinedError(AppError):
    status_code = 402
    code = "PAYMENT_DECLINED"
    default_message = "Payment declined"


class ForbiddenError(AppError):
    status_code = 403
    code = "FORBIDDEN"
    default_message = "Not allowed"


class NotFoundError(AppError):
    status_code = 404
    code = "NOT_FOUND"
    default_message = "Not found"


class MethodNotAllowedError(AppError):
    status_code = 405
    code = "METHOD_NOT_ALLOWED"
    default_message = "Method not allowed"


class ConflictError(AppError):
    status_code = 409
    code = "CONFLICT"
    default_message = "Conflict"


class PayloadTooLargeError(AppError):
    status_code = 413
    code = "PAYLOAD_TOO_LARGE"
    default_message = "Request body too large"


class UnsupportedMediaTypeError(AppError):
    status_code = 415
    code = "UNSUPPORTED_MEDIA_TYPE"
    default_message = "Unsupported media type"


class RangeNotSatisfiableError(AppError):
    status_code = 416
    code = "RANGE_NOT_SATISFIABLE"
    default_message = "The requested range is outside the file"


class ValidationFailedError(AppError):
    """422 raised by services for rules a schema cannot express; `errors` mirrors pydantic's."""

    status_code = 422
    code = "VALIDATION_ERROR"
    default_message = "Request validation failed"

    def __init__(
        self,
        message: str | None = None,
        *,
        errors: Sequence[Mapping[str, Any]] = (),
        **kwargs: Any,
    ) -> None:
        super().__init__(message, **kwargs)
        self.details.setdefault("errors", [dict(e) for e in errors])


class _RetryableError(AppError):
    """Base for errors that carry Retry-After, so clients back off instead of hammering."""

    def __init__(self, message: str | None = None, *, retry_after: int = 5, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.retry_after = retry_after
        self.headers.setdefault("Retry-After", str(retry_after))


class RateLimitedError(_RetryableError):
    status_code = 429
    code = "RATE_LIMITED"
    default_message = "Too many requests"


class InternalError(AppError):
    pass


class BadGatewayError(AppError):
    status_code = 502
    code = "BAD_GATEWAY"
    default_message = "An upstream service failed"


class ServiceUnavailableError(_RetryableError):
    status_code = 503
    code = "SERVICE_UNAVAILABLE"
    default_message = "Service temporarily unavailable"


class ConfigError(Exception):
    """Start-up refusal: the configuration is unsafe. Carries every problem found, not the first."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        listed = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"Keel refuses to start; fix the configuration:\n{listed}")


STATUS_CODES: dict[int, type[AppError]] = {
    cls.status_code: cls
    for cls in (
        BadRequestError,
        UnauthorizedError,
        PaymentDeclinedError,
        ForbiddenError,
        NotFoundError,
        MethodNotAllowedError,
        ConflictError,
        PayloadTooLargeError,
        UnsupportedMediaTypeError,
        RangeNotSatisfiableError,
        ValidationFailedError,
        RateLimitedError,
        InternalError,
        BadGatewayError,
        ServiceUnavailableError,
    )
}
"""Which error class answers a bare HTTP status (e.g. a Starlette 404 or 405)."""
