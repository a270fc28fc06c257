"""Running the real app in-process for tests."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from starlette.routing import BaseRoute

from keel.core.database import committing, get_session
from keel.core.reads import ConnectionReads, Reads, get_reads
from keel.features.auth.dependencies import get_verified_user
from keel.features.registry import features
from keel.main import API_PREFIX, create_app
from keel.settings import Settings


def isolate_sessions(app: FastAPI, connection: AsyncConnection) -> None:
    async def savepoint_session() -> AsyncIterator[AsyncSession]:
        async with (
            AsyncSession(
                bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False
            ) as session,
            committing(session),
        ):
            yield session

    async def connection_reads() -> Reads:
        return ConnectionReads(connection)

    app.dependency_overrides[get_session] = savepoint_session
    app.dependency_overrides[get_reads] = connection_reads


@asynccontextmanager
async def serve(
    app: FastAPI, base_url: str = "http://testserver", *, raise_app_exceptions: bool = True
) -> AsyncIterator[httpx.AsyncClient]:
    """Run the app's lifespan and talk to it in-process, as a server would."""
    async with (
        LifespanManager(app) as manager,
        httpx.AsyncClient(
            transport=httpx.ASGITransport(
                app=manager.app, raise_app_exceptions=raise_app_exceptions
            ),
            base_url=base_url,
        ) as http,
    ):
        yield http


def isolated_app(settings: Settings, connection: AsyncConnection) -> FastAPI:
    """An app from the real factory whose sessions are savepoints on the test's connection."""
    application = create_app(settings)
    isolate_sessions(application, connection)
    return application


def mounted_routes() -> list[tuple[str, BaseRoute]]:
    """Every enabled feature's routes with the path the app serves them under. Read from the
    features' declarations: the app's own route list holds included routers unexpanded."""
    return [
        ((API_PREFIX if feature.versioned else "") + getattr(route, "path", ""), route)
        for feature in features()
        if feature.router is not None
        for route in feature.router.routes
    ]


def verified_only_routes() -> list[tuple[str, str]]:
    """Every (method, path) whose handler takes `VerifiedUser`, whichever features are enabled
    (placing orders and uploading files, in Keel as shipped); path parameters as fresh ids."""

    def gated(dependant: Dependant) -> bool:
        return any(d.call is get_verified_user or gated(d) for d in dependant.dependencies)

    return [
        (method, re.sub(r"\{[^}]+\}", str(uuid.uuid4()), path))
        for path, route in mounted_routes()
        if isinstance(route, APIRoute) and gated(route.dependant)
        for method in sorted(route.methods)
    ]
