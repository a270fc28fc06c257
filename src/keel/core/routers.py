"""`FeatureRouter`: an `APIRouter` that tells FastAPI at once when a path is not one of its own.

FastAPI 0.165 keeps included routers as a tree and, for every request, tries the routes of
each included router in turn (twice: once to choose, once to dispatch), a few µs per route.
Every route of a router with a static prefix has that prefix in its path, whatever prefixes
the router is included under, so a path without it cannot match here and the walk over this
router's routes is skipped. A necessary condition only: a path with the prefix is matched as
FastAPI always does. Measured in bench/README.md (per-request cost).
"""

from __future__ import annotations

from fastapi import APIRouter
from starlette.routing import Match
from starlette.types import Scope


class FeatureRouter(APIRouter):
    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        prefix = self.prefix
        if prefix and "{" not in prefix and prefix not in scope.get("path", ""):
            return Match.NONE, {}
        return super().matches(scope)
