"""KA101 client at import, KA102 never disposed, KA103 pool settings, KA104 on_event."""

from __future__ import annotations

from collections.abc import Callable

from keel_audit.model import Finding

Audit = Callable[..., list[Finding]]
APP = "from fastapi import FastAPI\napp = FastAPI()\n"


def where(findings: list[Finding]) -> list[tuple[str, int]]:
    return [(f.location.path, f.location.line) for f in findings]


# -- KA101 -----------------------------------------------------------------------------------


def test_engines_and_clients_created_at_import(audit: Audit) -> None:
    findings = audit(
        {
            "main.py": APP,
            "db.py": """
                import boto3, httpx
                import redis.asyncio as aioredis
                from sqlalchemy.ext.asyncio import create_async_engine
                from motor.motor_asyncio import AsyncIOMotorClient

                engine = create_async_engine("postgresql+asyncpg://db/app")
                cache = aioredis.from_url("redis://cache")
                http = httpx.AsyncClient()
                s3 = boto3.client("s3")
                try:
                    mongo = AsyncIOMotorClient()
                except ImportError:
                    mongo = None

                class Holder:
                    client = httpx.Client()
            """,
        },
        codes=("KA101",),
    )
    assert where(findings) == [("db.py", n) for n in (7, 8, 9, 10, 12, 17)]
    assert findings[0].message == ("SQLAlchemy engine created at import: create_async_engine(...)")


def test_clients_made_in_functions_main_blocks_or_tests_are_not_at_import(audit: Audit) -> None:
    findings = audit(
        {
            "main.py": APP,
            "db.py": """
                import httpx
                from contextlib import asynccontextmanager
                from functools import lru_cache
                from sqlalchemy import create_engine

                @asynccontextmanager
                async def lifespan(app):
                    engine = create_engine("postgresql://db/app", pool_size=5)
                    yield
                    engine.dispose()

                @lru_cache
                def get_client():
                    return httpx.Client()

                if __name__ == "__main__":
                    create_engine("postgresql://db/app")
            """,
            "tests/conftest.py": "import httpx\nclient = httpx.Client()\n",
        },
        codes=("KA101",),
    )
    assert findings == []


def test_no_fastapi_no_import_time_findings(audit: Audit) -> None:
    findings = audit({"job.py": "import redis\nr = redis.Redis()\n"}, codes=("KA10",))
    assert findings == []


# -- KA102 -----------------------------------------------------------------------------------


def test_engines_and_clients_never_disposed(audit: Audit) -> None:
    findings = audit(
        {
            "main.py": """
                import httpx
                from contextlib import asynccontextmanager
                from fastapi import FastAPI
                from sqlalchemy.ext.asyncio import create_async_engine

                engine = create_async_engine("postgresql+asyncpg://db/app")
                payments = httpx.AsyncClient()

                @asynccontextmanager
                async def lifespan(app):
                    yield
                    await payments.aclose()

                app = FastAPI(lifespan=lifespan)

                async def per_request():
                    client = httpx.AsyncClient()
                    await client.get("https://x")
            """,
        },
        codes=("KA102",),
    )
    assert where(findings) == [("main.py", 7), ("main.py", 18)]
    assert "`engine` is never disposed" in findings[0].message


def test_no_lifespan_at_all_is_named_in_the_message(audit: Audit) -> None:
    findings = audit(
        {"main.py": APP + "import redis.asyncio as r\nstate_cache = r.Redis()\n"},
        codes=("KA102",),
    )
    assert len(findings) == 1
    assert "no lifespan or shutdown handler" in findings[0].message


def test_disposed_through_methods_callbacks_with_or_escape(audit: Audit) -> None:
    findings = audit(
        {
            "app/__init__.py": "",
            "app/db.py": """
                import httpx
                from sqlalchemy.ext.asyncio import create_async_engine

                class Database:
                    def __init__(self, url):
                        self.engine = create_async_engine(url, pool_size=5, max_overflow=5,
                                                          pool_pre_ping=True)

                    async def dispose(self):
                        await self.engine.dispose()

                class Gateway:
                    def __init__(self):
                        self._client = httpx.AsyncClient()

                    async def close(self):
                        await self._client.aclose()

                def build(url):
                    engine = create_async_engine(url, pool_size=5, max_overflow=5, pool_recycle=60)
                    return engine

                async def script():
                    async with httpx.AsyncClient() as client:
                        await client.get("https://x")

                class Exporter:
                    def __init__(self, url):
                        self.engine = create_async_engine(url)

                def run_migrations_online(url):
                    connectable = create_async_engine(url)
                    connectable.begin()
            """,
            "app/main.py": """
                from contextlib import AsyncExitStack, asynccontextmanager
                from fastapi import FastAPI
                from app.db import Database, Gateway

                @asynccontextmanager
                async def lifespan(app):
                    async with AsyncExitStack() as stack:
                        database = Database("postgresql+asyncpg://db/app")
                        stack.push_async_callback(database.dispose)
                        gateway = Gateway()
                        stack.push_async_callback(gateway.close)
                        yield

                app = FastAPI(lifespan=lifespan)
            """,
        },
        codes=("KA102",),
    )
    assert findings == []


# -- KA103 -----------------------------------------------------------------------------------


def test_server_engines_without_pool_settings(audit: Audit) -> None:
    findings = audit(
        {
            "db.py": """
                from sqlalchemy import create_engine
                from sqlalchemy.ext.asyncio import create_async_engine

                def a(settings):
                    return create_async_engine(settings.database_url)

                def b():
                    return create_engine("postgresql://db/app", pool_size=10, max_overflow=5)

                def c(url):
                    options = {"pool_size": 10}
                    options["pool_pre_ping"] = True
                    return create_async_engine(url, **options)
            """
        },
        codes=("KA103",),
    )
    assert where(findings) == [("db.py", 6), ("db.py", 9), ("db.py", 14)]
    assert "without pool_size, max_overflow, pool_pre_ping or pool_recycle" in findings[0].message
    assert "without pool_pre_ping or pool_recycle" in findings[1].message
    assert "without max_overflow:" in findings[2].message


def test_sqlite_nullpool_complete_or_unresolvable_settings_are_accepted(audit: Audit) -> None:
    findings = audit(
        {
            "db.py": """
                from sqlalchemy import create_engine
                from sqlalchemy.pool import NullPool
                from sqlalchemy.ext.asyncio import create_async_engine

                LOCAL = "sqlite:///./app.db"

                def a(settings):
                    return create_async_engine(settings.url, pool_size=settings.size,
                                               max_overflow=settings.overflow, pool_recycle=1800)

                def b(url):
                    create_engine(LOCAL)
                    create_engine("sqlite+aiosqlite://")
                    return create_async_engine(url, poolclass=NullPool)

                def c(url, **kwargs):
                    return create_async_engine(url, **kwargs)

                def one_off(url):
                    engine = create_engine(url)
                    with engine.connect() as connection:
                        connection.exec_driver_sql("select 1")

                def d(url):
                    if url.startswith("sqlite"):
                        return create_async_engine(url)
                    return create_async_engine(url, **dict(pool_size=1, max_overflow=0,
                                                           pool_pre_ping=True))
            """,
            "migrations/env.py": """
                from sqlalchemy import create_engine
                engine = create_engine("postgresql://db/app")
            """,
        },
        codes=("KA103",),
    )
    assert findings == []


# -- KA104 -----------------------------------------------------------------------------------


def test_on_event_and_startup_lists(audit: Audit) -> None:
    findings = audit(
        {
            "main.py": """
                from fastapi import APIRouter, FastAPI

                async def connect(): ...

                app = FastAPI(on_shutdown=[connect])
                router = APIRouter()

                @app.on_event("startup")
                async def start(): ...

                @router.on_event("shutdown")
                async def stop(): ...

                app.add_event_handler("startup", connect)
            """
        },
        codes=("KA104",),
    )
    assert where(findings) == [("main.py", n) for n in (6, 9, 12, 15)]
    assert findings[1].message == 'app.on_event("startup") is deprecated; use a lifespan'


def test_lifespan_and_unrelated_on_event_are_fine(audit: Audit) -> None:
    findings = audit(
        {
            "main.py": """
                from contextlib import asynccontextmanager
                from fastapi import FastAPI

                @asynccontextmanager
                async def lifespan(app):
                    yield

                app = FastAPI(lifespan=lifespan)

                @app.on_event("custom")
                async def other(): ...
            """,
            "bus.py": """
                class Bus:
                    def on_event(self, name): ...

                bus = Bus()
                bus.on_event("startup")
            """,
        },
        codes=("KA104",),
    )
    assert findings == []
