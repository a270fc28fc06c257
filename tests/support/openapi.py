"""Reading the OpenAPI document in tests."""

from __future__ import annotations

from typing import Any


def component(document: dict[str, Any], name: str) -> dict[str, Any]:
    return document["components"]["schemas"][name]  # type: ignore[no-any-return]
