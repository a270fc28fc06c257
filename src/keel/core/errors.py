"""The one exception hierarchy. Raise these anywhere; `core.exception_handlers` renders them.

Each class is one row of the SPEC error table, so a service says *what* went wrong and the
HTTP shape (status, code, headers) follows from the type.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Self


def _code_of(class_name: str) -> str:
    """`UnsupportedMediaTypeError` -> `UNSUPPORTED_MEDIA_TYPE`: the SPEC's codes are the
    classes' names, so the two cannot drift apart."""
    return "_".join(re.findall(r"[A-Z][a-z]*", class_name.removesuffix("Error"))).upper()


class AppError(Exception):
    """An error the client should see, with a stable machine-readable code."""

    status_code: ClassVar[int] = 500
    code: ClassVar[str] = "INTERNAL_ERROR"
    default_message: ClassVar[str] = "Internal server error"

    def __init_subclass__(
        cls, *, status: int | None = None, code: str | None = None, message: str | None = None
    ) -> None:
        """`class NotFoundError(AppError, status=404, message="Not found")`: one line a SPEC
        row. The code is the class's name (`NOT_FOUND`) unless it names one; a subclass that
        names none of the three keeps its parent's row."""
        super().__init_subclass__()
        if status is not None:
            cls.status_code = status
            cls.code = _code_of(cls.__name__)
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


class BadRequestError(AppError, status=400, message="Bad request"):
    """Refused for a reason that is not one field (a field that is wrong is a 422)."""


class UnauthorizedError(AppError, status=401, message="Not authenticated"):
    """No valid credentials; `WWW-Authenticate: Bearer` tells clients how to retry."""

    def __init__(self, message: str | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.headers.setdefault("WWW-Authenticate", "Bearer")


class PaymentDeclinedError(AppError, status=402, message="Payment declined"):
    """The gateway answered and said no (insufficient funds, declined card): nothing was charged."""


class ForbiddenError(AppError, status=403, message="Not allowed"):
    """Authenticated but not allowed; someone else's rows are a 404 instead (`User.may_see`)."""


class NotFoundError(AppError, status=404, message="Not found"):
    """No such resource, or one the caller may not know exists."""


class MethodNotAllowedError(AppError, status=405, message="Method not allowed"):
    """The path exists but not with this method; the handler adds `Allow`."""


class ConflictError(AppError, status=409, message="Conflict"):
    """The resource's current state forbids the change (a duplicate SKU, a paid order)."""


class PayloadTooLargeError(AppError, status=413, message="Request body too large"):
    """The body is over the limit; raised before the rest of it is read."""


class UnsupportedMediaTypeError(AppError, status=415, message="Unsupported media type"):
    """The content type (declared or sniffed) is not one this endpoint accepts."""


class RangeNotSatisfiableError(
    AppError, status=416, message="The requested range is outside the file"
):
    """HTTP's own answer to a Range outside the file (docs/decisions.md), not a SPEC row."""


Loc = tuple[str | int, ...]
"""Where an input is: the request part first ("body", "query", "header", "path"), then the
field names and list indexes down to it, e.g. `("body", "items", 0, "product_id")`."""


@dataclass(frozen=True, slots=True)
class FieldError:
    """One entry of a 422's `details.errors`: which input (`loc`), what is wrong with it (`msg`,
    for people) and what kind of wrong (`type`, stable, for programs: pydantic's types where one
    fits, e.g. "missing", else a short word of the rule's own).

    The one place the SPEC's `{"loc", "msg", "type"}` shape is written, so every 422 (FastAPI's
    own, a schema's, a service's) names fields the same way."""

    loc: Loc
    msg: str
    type: str

    def as_dict(self) -> dict[str, Any]:
        return {"loc": list(self.loc), "msg": self.msg, "type": self.type}


def _loc_part(part: Any) -> str | int:
    """Pydantic's loc parts are names and indexes; anything else (bytes from a malformed
    request) becomes text, so the body stays valid JSON."""
    return part if isinstance(part, str | int) else str(part)


class ValidationFailedError(
    AppError, status=422, code="VALIDATION_ERROR", message="Request validation failed"
):
    """422 for input a schema cannot judge alone (a rule across fields, an id the database must
    know). Build it from `FieldError`s: `ValidationFailedError.field(loc, msg, type)` for one,
    `ValidationFailedError(message, errors=[...])` for several, `from_pydantic` for pydantic's."""

    def __init__(
        self,
        message: str | None = None,
        *,
        errors: Sequence[FieldError] = (),
        **kwargs: Any,
    ) -> None:
        super().__init__(message, **kwargs)
        self.errors = tuple(errors)
        self.details.setdefault("errors", [error.as_dict() for error in self.errors])

    @classmethod
    def field(cls, loc: Loc, msg: str, type: str, *, message: str | None = None) -> Self:
        """The error for one wrong input: `ValidationFailedError.field(("body", "size"), ...)`."""
        return cls(message, errors=[FieldError(loc, msg, type)])

    @classmethod
    def from_pydantic(
        cls,
        errors: Iterable[Mapping[str, Any]],
        *,
        prefix: Loc = (),
        names: Mapping[str, str] | None = None,
    ) -> Self:
        """Pydantic's errors (`ValidationError.errors()`) in the SPEC shape, dropping `input`
        and `ctx` (they may echo secrets). `prefix` places a model validated outside FastAPI
        (`("body",)`); `names` renames top-level fields, for a form fed into another model."""
        renamed = names or {}
        found = []
        for error in errors:
            loc = [_loc_part(part) for part in error.get("loc", ())]
            if loc and isinstance(loc[0], str):
                loc[0] = renamed.get(loc[0], loc[0])
            found.append(
                FieldError((*prefix, *loc), str(error.get("msg", "")), str(error.get("type", "")))
            )
        return cls(errors=found)


class _RetryableError(AppError):
    """Base for errors that carry Retry-After, so clients back off instead of hammering."""

    def __init__(self, message: str | None = None, *, retry_after: int = 5, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.retry_after = retry_after
        self.headers.setdefault("Retry-After", str(retry_after))


class RateLimitedError(_RetryableError, status=429, message="Too many requests"):
    """Over a rate limit; `Retry-After` says when to come back."""


class InternalError(AppError):
    """Something went wrong on our side; the body never says what (the log does)."""


class BadGatewayError(AppError, status=502, message="An upstream service failed"):
    """An upstream (the payment gateway) failed or answered nonsense."""


class ServiceUnavailableError(
    _RetryableError, status=503, message="Service temporarily unavailable"
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
