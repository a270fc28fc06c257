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
    route = scope.get("route")
    path = getattr(route, "path_format", None)
    if path:
        return _included_prefix(scope["path"], route) + str(path)
    return UNMATCHED_ROUTE if status == 404 else str(scope["path"])


def _included_prefix(full_path: str, route: object) -> str:
    """The prefix a router was included under (`/api/v1`), which FastAPI applies lazily and
    so leaves out of the recorded route's template: the part of the path before the segment
    at which the route's own pattern matches."""
    pattern = getattr(route, "path_regex", None)
    if pattern is None or pattern.match(full_path):
        return ""
    cut = full_path.find("/", 1)
    while cut != -1:
        if pattern.match(full_path[cut:]):
            return full_path[:cut]
        cut = full_path.find("/", cut + 1)
    return ""
