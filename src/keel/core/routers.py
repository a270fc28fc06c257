"""How feature routers join the app: `FeatureRouter`, and `include_flat` for root routers.

`FeatureRouter` is an `APIRouter` that tells FastAPI at once when a path is not one of its own.

FastAPI 0.165 keeps included routers as a tree and, for every request, tries the routes of
each included router in turn (twice: once to choose, once to dispatch), a few µs per route.
Every route of a router with a static prefix has that prefix in its path, whatever prefixes
the router is included under, so a path without it cannot match here and the walk over this
router's routes is skipped. A necessary condition only: a path with the prefix is matched as
FastAPI always does. Measured in bench/README.md (per-request cost).

`include_flat` adds a router's routes to the app's own router instead of including the router
as a node of that tree: the probes (`/health` is asked every few seconds of every process)
are then matched by one regular expression, with no walk and no second match. It does what
`include_router` did for every router up to FastAPI 0.135, so the routes and the OpenAPI
document are those `include_router` gives (tested byte for byte).
"""

from __future__ import annotations

from fastapi import APIRouter, FastAPI
from fastapi.routing import APIRoute
from starlette.routing import Match
from starlette.types import Scope


class FeatureRouter(APIRouter):
    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        prefix = self.prefix
        if prefix and "{" not in prefix and prefix not in scope.get("path", ""):
            return Match.NONE, {}
        return super().matches(scope)


def include_flat(app: FastAPI, router: APIRouter) -> None:
    """Add `router`'s routes (all `APIRoute`s, no prefix of its own) to `app` itself."""
    if router.prefix:
        raise ValueError("include_flat is for a router mounted at the root, without a prefix")
    for route in router.routes:
        if not isinstance(route, APIRoute):
            raise TypeError(f"include_flat takes API routes only, not {route!r}")
        app.router.add_api_route(
            route.path,
            route.endpoint,
            response_model=route.response_model,
            status_code=route.status_code,
            tags=route.tags,
            dependencies=route.dependencies,
            summary=route.summary,
            description=route.description,
            response_description=route.response_description,
            responses=route.responses,
            deprecated=route.deprecated,
            methods=route.methods,
            operation_id=route.operation_id,
            response_model_include=route.response_model_include,
            response_model_exclude=route.response_model_exclude,
            response_model_by_alias=route.response_model_by_alias,
            response_model_exclude_unset=route.response_model_exclude_unset,
            response_model_exclude_defaults=route.response_model_exclude_defaults,
            response_model_exclude_none=route.response_model_exclude_none,
            include_in_schema=route.include_in_schema,
            response_class=route.response_class,
            name=route.name,
            callbacks=route.callbacks,
            openapi_extra=route.openapi_extra,
            route_class_override=type(route),
        )
