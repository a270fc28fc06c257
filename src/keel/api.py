"""The versioned API: every feature router mounted under `/api/v1`."""

from fastapi import APIRouter

from keel.core.middleware.body_limit import upload_prefixes
from keel.features.auth.router import router as auth_router
from keel.features.catalog.router import router as catalog_router
from keel.features.files.router import router as files_router
from keel.features.imports.router import router as imports_router
from keel.features.jobs.router import router as jobs_router
from keel.features.orders.router import router as orders_router
from keel.features.realtime.router import router as realtime_router
from keel.features.users.router import router as users_router

# Busiest first: FastAPI 0.165 matches a request against the included routers' routes one by
# one, twice per request (once to choose, once to dispatch), at a few µs per route; the
# prefixes are disjoint, so the order changes nothing else (bench/README.md, per-request cost).
FEATURE_ROUTERS = (
    catalog_router,
    orders_router,
    users_router,
    auth_router,
    files_router,
    jobs_router,
    imports_router,
    realtime_router,
)

api_router = APIRouter(prefix="/api/v1")
for feature_router in FEATURE_ROUTERS:
    api_router.include_router(feature_router)

UPLOAD_PREFIXES = upload_prefixes(api_router, FEATURE_ROUTERS)
"""Where bodies are file uploads: the prefixes of the features' `UploadRouter`s."""
