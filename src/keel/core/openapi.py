"""Facts of the OpenAPI document that depend on this deployment's settings.

Schemas are static classes, but some limits are settings (the largest upload, the accepted
file types). Rather than documenting the widest value the settings could allow — which would
promise requests this server refuses — each app writes its own values into its document when
FastAPI first builds it, so the contract a client (or a fuzzer) reads is the one enforced.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from fastapi import FastAPI

OpenApiDocument = dict[str, Any]
OpenApiAdjuster = Callable[[OpenApiDocument], None]


def adjust_openapi(app: FastAPI, *adjusters: OpenApiAdjuster) -> None:
    """Run each adjuster once on the document FastAPI builds (and caches) for `app`."""
    build = app.openapi

    def openapi() -> OpenApiDocument:
        if app.openapi_schema is None:
            document = build()
            for adjust in adjusters:
                adjust(document)
        return app.openapi_schema  # type: ignore[return-value]

    app.openapi = openapi  # type: ignore[method-assign]


def operations(document: OpenApiDocument, path_suffix: str) -> Iterator[tuple[str, Any]]:
    """(method, operation) for every path ending in `path_suffix` (the API prefix is the
    router's business, not the feature's)."""
    for path, item in document.get("paths", {}).items():
        if path.endswith(path_suffix):
            yield from item.items()
