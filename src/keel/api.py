"""The versioned API: every feature router mounted under `/api/v1`."""

from fastapi import APIRouter

from keel.features.auth.router import router as auth_router
from keel.features.catalog.router import router as catalog_router
from keel.features.files.router import router as files_router
from keel.features.imports.router import router as imports_router
from keel.features.jobs.router import router as jobs_router
from keel.features.orders.router import router as orders_router
from keel.features.realtime.router import router as realtime_router
from keel.features.users.router import router as users_router

api_router = APIRouter(prefix="/api/v1")
api_router.include_router(auth_router)
api_router.include_router(users_router)
api_router.include_router(catalog_router)
api_router.include_router(orders_router)
api_router.include_router(files_router)
api_router.include_router(jobs_router)
api_router.include_router(imports_router)
api_router.include_router(realtime_router)
