"""PATCH semantics shared by every feature: only the fields sent change, and `null` is refused
for fields where it has no meaning (all of Keel's, so far).

Every Update schema derives from `PatchModel`. Its fields are typed `X | None = None` so that
"not sent" has a value, but the OpenAPI document must not say `null` is accepted when it is
not: `PatchModel` rewrites each field's JSON schema to the non-null branch (no `default`
either, since "absent" is not a value a client can send). The server still answers a sent
`null` with a 422 naming the field (`sent_fields`), which is what that schema promises.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict

from keel.core.errors import FieldError, ValidationFailedError
from keel.core.types import RequestModel


def _without_null(schema: dict[str, Any]) -> None:
    """`anyOf: [X, {"type": "null"}]` → X, keeping the field's own title and description."""
    branches = schema.get("anyOf")
    if not isinstance(branches, list):
        return
    kept = [branch for branch in branches if branch != {"type": "null"}]
    if len(kept) == len(branches):
        return
    del schema["anyOf"]
    if len(kept) == 1:
        schema.update({key: value for key, value in kept[0].items() if key not in schema})
    else:
        schema["anyOf"] = kept


def _patch_schema(schema: dict[str, Any], model: type[BaseModel]) -> None:
    nullable: frozenset[str] = getattr(model, "nullable_fields", frozenset())
    for name, field_schema in schema.get("properties", {}).items():
        if name in nullable:
            continue
        _without_null(field_schema)
        field_schema.pop("default", None)
    requires: dict[str, list[str]] = getattr(model, "dependent_required", {})
    if requires:
        schema["dependentRequired"] = {key: list(value) for key, value in requires.items()}


class PatchModel(RequestModel):
    """The base of every PATCH body. Unknown fields are refused; no field may be `null` unless
    named in `nullable_fields` (where `null` means "clear it"); `dependent_required` documents
    fields that only make sense together (JSON Schema `dependentRequired`)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=_patch_schema)

    nullable_fields: ClassVar[frozenset[str]] = frozenset()
    dependent_required: ClassVar[dict[str, tuple[str, ...]]] = {}


def sent_fields(changes: BaseModel) -> set[str]:
    """The fields the client sent; 422 naming each one sent as null (where null is refused),
    or a field sent without the fields it requires."""
    sent = set(changes.model_fields_set)
    nullable: frozenset[str] = getattr(changes, "nullable_fields", frozenset())
    nulls = sorted(f for f in sent if getattr(changes, f) is None and f not in nullable)
    if nulls:
        raise ValidationFailedError(
            "These fields cannot be null",
            errors=[FieldError(("body", f), "may not be null", "null") for f in nulls],
        )
    requires: dict[str, tuple[str, ...]] = getattr(changes, "dependent_required", {})
    missing = sorted(
        (field, needed)
        for field, needs in requires.items()
        if field in sent
        for needed in needs
        if needed not in sent
    )
    if missing:
        raise ValidationFailedError(
            "Some fields are only accepted together with others",
            errors=[
                FieldError(("body", needed), f"required with {field}", "missing")
                for field, needed in missing
            ],
        )
    return sent
