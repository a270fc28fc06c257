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

    def __init_subclass__(
        cls, *, status: int | None = None, code: str | None = None, message: str | None = None
    ) -> None:
        """`class NotFoundError(AppError, status=404, code="NOT_FOUND", message=...)`: one
        line a SPEC row; a subclass that names none of them keeps its parent's."""
        super().__init_subclass__()
        if status is not None:
            cls.status_code = status
        if code is not None:
            cls.code = code
        if message is not None:
            cls.default_message = message

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


class BadRequestError(AppError, status=400, code="BAD_REQUEST", message="Bad request"):
    """Refused for a reason that is not one field (a field that is wrong is a 422)."""


class UnauthorizedError(AppError, status=401, code="UNAUTHORIZED", message="Not authenticated"):
    """No valid credentials; `WWW-Authenticate: Bearer` tells clients how to retry."""

    def __init__(self, message: str | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.headers.setdefault("WWW-Authenticate", "Bearer")


class PaymentDeclinedError(
    AppError, status=402, code="PAYMENT_DECLINED", message="Payment declined"
):
    """The gateway answered and said no (insufficient funds, declined card): nothing was charged."""


class ForbiddenError(AppError, status=403, code="FORBIDDEN", message="Not allowed"):
    """Authenticated but not allowed; someone else's rows are a 404 instead (`User.may_see`)."""


class NotFoundError(AppError, status=404, code="NOT_FOUND", message="Not found"):
    """No such resource, or one the caller may not know exists."""


class MethodNotAllowedError(
    AppError, status=405, code="METHOD_NOT_ALLOWED", message="Method not allowed"
):
    """The path exists but not with this method; the handler adds `Allow`."""


class ConflictError(AppError, status=409, code="CONFLICT", message="Conflict"):
    """The resource's current state forbids the change (a duplicate SKU, a paid order)."""


class PayloadTooLargeError(
    AppError, status=413, code="PAYLOAD_TOO_LARGE", message="Request body too large"
):
    """The body is over the limit; raised before the rest of it is read."""


class UnsupportedMediaTypeError(
    AppError, status=415, code="UNSUPPORTED_MEDIA_TYPE", message="Unsupported media type"
):
    """The content type (declared or sniffed) is not one this endpoint accepts."""


class RangeNotSatisfiableError(
    AppError,
    status=416,
    code="RANGE_NOT_SATISFIABLE",
    message="The requested range is outside the file",
):
    """HTTP's own answer to a Range outside the file (docs/decisions.md), not a SPEC row."""


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


class RateLimitedError(
    _RetryableError, status=429, code="RATE_LIMITED", message="Too many requests"
):
    """Over a rate limit; `Retry-After` says when to come back."""


class InternalError(AppError):
    """Something went wrong on our side; the body never says what (the log does)."""


class BadGatewayError(
    AppError, status=502, code="BAD_GATEWAY", message="An upstream service failed"
):
    """An upstream (the payment gateway) failed or answered nonsense."""


class ServiceUnavailableError(
    _RetryableError,
    status=503,
    code="SERVICE_UNAVAILABLE",
    message="Service temporarily unavailable",
):
    """The database or a required backend is unreachable; `Retry-After` says when to retry."""


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
