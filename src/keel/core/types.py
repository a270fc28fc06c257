"""The types every request goes through: integers with a stated range, strings without NUL.

Two families of bad input used to reach the database and come back as a 500:

- integers beyond 64 bits (or beyond what a column holds): Python accepts any size, SQLite and
  asyncpg do not. Every integer a client sends uses one of the bounded types below, so the
  range is checked at the edge and written in the OpenAPI document.
- strings with a NUL character: PostgreSQL's text type cannot store U+0000. Every request body
  model derives from `RequestModel`, which refuses NUL in any string field, and every query or
  header string parameter is a `Text`.

Both become 422 `VALIDATION_ERROR` with the offending field in `details.errors[].loc`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    Field,
    ValidationError,
    field_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

SAFE_INT_MAX = 2**53 - 1
"""The largest integer any Keel input accepts: JSON's interoperable range (RFC 7493), so a
JavaScript client reads every value exactly, far inside a BIGINT column, and exact in the
OpenAPI document too (FastAPI writes bounds as floats; 2**63 - 1 would print as 2**63)."""

MAX_MINOR_UNITS = 10**12
"""The largest amount of money Keel accepts or reports, in minor units (10 billion EUR)."""

MAX_PAGE = 1_000_000
"""Deep enough for 100 million rows at the largest page size; the SQL OFFSET it implies
stays far inside 64 bits."""

MAX_PAGE_SIZE = 100

NUL_ERROR_TYPE = "string_nul"


def _nul_error() -> PydanticCustomError:
    return PydanticCustomError(NUL_ERROR_TYPE, "String must not contain NUL characters (\\u0000)")


def reject_nul(value: str) -> str:
    """Refuse a string PostgreSQL could not store (and no client means to send)."""
    if "\x00" in value:
        raise _nul_error()
    return value


Text = Annotated[str, AfterValidator(reject_nul)]
"""A string query or header parameter, or a field of a query-parameter model (body fields are
covered by `RequestModel`)."""


def invalid_field(
    model: type[BaseModel], field: str, value: Any, msg: str, type: str = "value_error"
) -> ValidationError:
    """For a model validator's rule across fields: an error that names `field`, not the whole
    model. Pydantic places a `ValueError` raised there at the model (FastAPI would say
    `["query"]`); this error keeps its own `loc`, so the 422 says `["query", "min_price"]`."""
    line = InitErrorDetails(type=PydanticCustomError(type, msg), loc=(field,), input=value)
    return ValidationError.from_exception_data(model.__name__, [line])


class RequestModel(BaseModel):
    """Base of every request body model: no field of it, nested or not, accepts a NUL.

    A validator on the base rather than a type on each field, so a field added later (or typed
    `EmailStr`, `SecretStr`, an enum) is covered without anyone remembering to. It runs before
    the field's own validation and sees the raw JSON value: a string, or a list of strings.
    Nested objects are models of their own and check their own fields, so the error names the
    innermost field.
    """

    @field_validator("*", mode="before", check_fields=False)
    @classmethod
    def _no_nul(cls, value: Any) -> Any:
        if isinstance(value, str):
            reject_nul(value)
        elif isinstance(value, list) and any(
            isinstance(item, str) and "\x00" in item for item in value
        ):
            raise _nul_error()
        return value


def _not_a_boolean(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError("Input should be an integer, not a boolean")
    return value


NOT_A_BOOLEAN = BeforeValidator(_not_a_boolean)
"""For the integer fields of JSON bodies, after their constraints
(`Annotated[int, Field(ge=0), NOT_A_BOOLEAN]`; placed before them, pydantic would publish
`ge`/`le` instead of `minimum`/`maximum`). Lax parsing takes `true` for 1, which the schema
(`integer`) does not allow; `5.0` stays accepted, as JSON Schema counts it an integer."""

MinorUnits = Annotated[
    int,
    Field(ge=0, le=MAX_MINOR_UNITS, description="Integer minor units (cents)."),
    NOT_A_BOOLEAN,
]
PageNumber = Annotated[int, Field(ge=1, le=MAX_PAGE, description="1-based page number")]
PageSize = Annotated[int, Field(ge=1, le=MAX_PAGE_SIZE, description="Items per page")]
FileSize = Annotated[int, Field(ge=1, le=SAFE_INT_MAX), NOT_A_BOOLEAN]
"""A size in bytes a client announces (the upload limit is a setting, checked by the
service)."""


class Money(RequestModel):
    """Money as SPEC §3 writes it: integer minor units plus an ISO 4217 code, never a float.
    Stored as two columns (`<name>_amount`, `<name>_currency`)."""

    amount: MinorUnits
    currency: str = Field(pattern=r"^[A-Z]{3}$", description="ISO 4217 code, e.g. EUR.")


def money_fields(amount: int | None, currency: str | None) -> dict[str, Any] | None:
    """Money stored as two columns, as `Money` dumps it; None when the row has none."""
    if amount is None or currency is None:
        return None
    return {"amount": amount, "currency": currency}


def _in_utc(value: datetime) -> datetime:
    try:
        return value.astimezone(UTC)
    except OverflowError:  # 0001-01-01T00:00:00+01:00 is before year 1 in UTC
        raise PydanticCustomError(
            "datetime_range", "Datetime must fall between years 1 and 9999 in UTC"
        ) from None


def _written_as_text(value: object) -> object:
    """The schema says a date-time string; pydantic would also read a number as Unix time."""
    if isinstance(value, int | float):
        raise PydanticCustomError("datetime_type", "Input should be an ISO 8601 date-time string")
    return value


Instant = Annotated[AwareDatetime, BeforeValidator(_written_as_text), AfterValidator(_in_utc)]
"""A point in time a client sends: an ISO 8601 string (not a number, which the schema does not
allow), with an offset (a naive time names no instant) and representable in UTC, the way every
timestamp column stores it (`UTCDateTime`)."""
