"""PATCH semantics shared by every feature: only the fields sent change, and `null` is refused
for fields where it has no meaning (all of Keel's, so far)."""

from __future__ import annotations

from pydantic import BaseModel

from keel.core.errors import ValidationFailedError


def sent_fields(changes: BaseModel) -> set[str]:
    """The fields the client sent; 422 naming each one sent as null."""
    sent = set(changes.model_fields_set)
    nulls = sorted(field for field in sent if getattr(changes, field) is None)
    if nulls:
        raise ValidationFailedError(
            "These fields cannot be null",
            errors=[{"loc": ["body", f], "msg": "may not be null", "type": "null"} for f in nulls],
        )
    return sent
