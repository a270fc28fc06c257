"""Schemas every feature shares: the error body (documented on every operation)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, BeforeValidator, Field


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


def _not_a_boolean(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError("Input should be an integer, not a boolean")
    return value


NOT_A_BOOLEAN = BeforeValidator(_not_a_boolean)
"""For the integer fields of JSON bodies, after their constraints
(`Annotated[int, Field(ge=0), NOT_A_BOOLEAN]`; placed before them, pydantic would publish
`ge`/`le` instead of `minimum`/`maximum`). Lax parsing takes `true` for 1, which the schema
(`integer`) does not allow; `5.0` stays accepted, as JSON Schema counts it an integer."""
