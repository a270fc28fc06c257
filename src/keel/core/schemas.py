"""Schemas every feature shares: the error body (documented on every operation), and reading
response schemas from rows that store one field as several columns."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel, Field
from pydantic_core import to_json
from starlette.responses import Response


class ErrorDetail(BaseModel):
    code: str = Field(examples=["NOT_FOUND"])
    message: str = Field(examples=["Product not found"])
    details: dict[str, Any] = Field(default_factory=dict)
    request_id: str | None = Field(examples=["0b5c8a4e-3f0e-4c5e-9a57-6b1d2f0c9e11"])


class ErrorResponse(BaseModel):
    """The one error body (SPEC §3): every 4xx and 5xx, from any layer, looks like this."""

    error: ErrorDetail


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    "4XX": {"model": ErrorResponse, "description": "Client error"},
    "5XX": {"model": ErrorResponse, "description": "Server or upstream error"},
}
"""Declared on the app so every operation documents the error body (and FastAPI does not
advertise its own 422 shape, which Keel replaces)."""


def nest_columns(value: Any, fields: Iterable[str], name: str, **columns: str) -> Any:
    """For a `mode="before"` validator: a row that stores the response field `name` as flat
    columns (`price` as `price_amount` and `currency`) becomes the dict the schema reads, its
    other `fields` copied. Anything else (a dict from the cache, a schema) passes unchanged.

    `columns` maps each key of the nested object to its column: `amount="price_amount"`.
    The keys come in the order of `fields`, so a page's row (a Core row has the columns as
    attributes too) given to this alone is already what the schema would dump.
    """
    if not all(hasattr(value, column) for column in columns.values()):
        return value
    return {
        field: (
            {key: getattr(value, column) for key, column in columns.items()}
            if field == name
            else getattr(value, field)
        )
        for field in fields
    }


def fields_response(fields: dict[str, Any]) -> Response:
    """A response body read from a row (`nest_columns` and the like), written as JSON without a
    second validation; the route declares the schema as its `response_model`."""
    return Response(to_json(fields), media_type="application/json")
