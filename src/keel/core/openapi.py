"""Facts of the OpenAPI document that depend on this deployment's settings.

Schemas are static classes, but some limits are settings (the largest upload, the accepted
file types). Rather than documenting the widest value the settings could allow — which would
promise requests this server refuses — each app writes its own values into its document when
FastAPI first builds it, so the contract a client (or a fuzzer) reads is the one enforced.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI
from fastapi.routing import APIRoute

from keel.core.operations import OPERATIONS_PATHS

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


def operation_id(route: APIRoute) -> str:
    """`<tag>-<handler>` in kebab case (`auth-register`, `orders-pay-order`): unique because a
    handler's name is unique within its feature, and what a generated client names its method
    (`authRegister`) instead of FastAPI's `register_api_v1_auth_register_post`."""
    tag = route.tags[0] if route.tags else "api"
    return f"{tag}-{route.name}".replace("_", "-").lower()


def document_error_statuses(document: OpenApiDocument) -> None:
    """Name the error statuses each operation can answer with, all in the error body.

    Every operation already documents `4XX`/`5XX` with the error body; a client generator
    turns named statuses into typed errors, so the ones that follow from the operation's shape
    are written out: 401 where it needs a token, 404 where the path names a resource, 422 where
    it takes input, and 429 wherever the default rate limit applies (everything but probes).
    Statuses a route declares itself (`responses=`) are kept as they are.
    """
    error_schema = {"$ref": "#/components/schemas/ErrorResponse"}
    for path, item in document.get("paths", {}).items():
        for operation in item.values():
            statuses = set()
            if operation.get("security"):
                statuses.add(HTTPStatus.UNAUTHORIZED)
            if "{" in path:
                statuses.add(HTTPStatus.NOT_FOUND)
            inputs = [p for p in operation.get("parameters", []) if p.get("in") != "path"]
            if inputs or operation.get("requestBody"):  # a malformed path id is a 404
                statuses.add(HTTPStatus.UNPROCESSABLE_ENTITY)
            if path not in OPERATIONS_PATHS:
                statuses.add(HTTPStatus.TOO_MANY_REQUESTS)
            responses = operation.setdefault("responses", {})
            for status in sorted(statuses):
                responses.setdefault(
                    str(status.value),
                    {
                        "description": status.phrase,
                        "content": {"application/json": {"schema": error_schema}},
                    },
                )
