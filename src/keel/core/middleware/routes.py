"""How a request is named in logs and metrics: by its route template, never its raw path."""

from __future__ import annotations

from starlette.types import Scope

UNMATCHED_ROUTE = "<unmatched>"


def route_template(scope: Scope, status: int) -> str:
    """The matched route's template (`/api/v1/orders/{order_id}`), read after the app ran.

    FastAPI records its own routes in the scope; plain Starlette routes and mounts (docs,
    static files) are not recorded, so they are named by their path, which they bound. A 404
    gets a fixed label so scanners probing random URLs cannot blow up cardinality.
    """
    path = getattr(scope.get("route"), "path_format", None)
    if path:
        return str(path)
    return UNMATCHED_ROUTE if status == 404 else str(scope["path"])
