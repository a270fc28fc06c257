"""KA501 (SQL formatting), KA601-KA602 (test setup), KA701-KA702 (background work, health)."""

# ruff: noqa: S608 - the SQL strings here are source code of fixture projects, never executed

from __future__ import annotations

from collections.abc import Callable

import pytest

from keel_audit.rules.base import Rule
from keel_audit.rules.ops import BackgroundTaskLongWork, NoHealthRoute, health_route
from keel_audit.rules.sql import AsyncSessionExpireOnCommit, SqlStringFormatting
from keel_audit.rules.testing import AsyncTestsNoMode, SyncTestsAsyncDb
from keel_audit.source import Project

Make = Callable[[dict[str, str]], Project]


def run(make_project: Make, rule: type[Rule], files: dict[str, str]) -> list[str]:
    return [f"{f.location} {f.message}" for f in rule().check(make_project(files))]


# --- KA501 -----------------------------------------------------------------------------

SQL_HEAD = "from sqlalchemy import text\n\n"
SQL_POSITIVES = {
    "f-string into text()": SQL_HEAD
    + "async def find(session, name):\n"
    + "    return await session.execute(text(f\"SELECT * FROM users WHERE name = '{name}'\"))\n",
    "% into cursor.execute": "def find(cursor, user_id):\n"
    + '    cursor.execute("SELECT * FROM orders WHERE user_id = %s" % user_id)\n',
    "+ built in a variable, then executed": "async def delete(conn, ids):\n"
    + '    query = "DELETE FROM items WHERE id IN (" + ids + ")"\n'
    + "    await conn.execute(query)\n",
    ".format() into exec_driver_sql": "def rename(conn, new):\n"
    + "    conn.exec_driver_sql(\"UPDATE shop SET name = '{}'\".format(new))\n",
    "+= appends a filter": "async def search(conn, term):\n"
    + '    sql = "SELECT id FROM items WHERE 1 = 1"\n'
    + "    sql += f\" AND name LIKE '%{term}%'\"\n"
    + "    return await conn.fetch(sql)\n",
}
SQL_NEGATIVES = {
    "bind parameters": SQL_HEAD
    + "async def find(session, name):\n"
    + '    query = text("SELECT * FROM users WHERE name = :n")\n'
    + '    return await session.execute(query, {"n": name})\n',
    "an UPPER_CASE constant and a table name": SQL_HEAD
    + 'SCHEMA = "shop"\n\n'
    + "async def count(session, model):\n"
    + '    sql = text(f"SELECT count(*) FROM {SCHEMA}.{model.__tablename__}")\n'
    + "    return await session.execute(sql)\n",
    "placeholders joined from literals": "async def load(conn, ids):\n"
    + '    await conn.fetch(f"SELECT * FROM items WHERE id IN ({", ".join(["$1"] * len(ids))})")\n'
    + '    marks = ", ".join("$" + str(i) for i in range(len(ids)))\n'
    + '    return await conn.fetch(f"SELECT * FROM items WHERE id IN ({marks})", *ids)\n',
    "DDL and SET take identifiers, not binds (Polar's SET LOCAL TIME ZONE)": SQL_HEAD
    + "async def tz(session, zone, role):\n"
    + "    await session.execute(text(f\"SET LOCAL TIME ZONE '{zone.key}'\"))\n"
    + '    await session.execute(text(f"CREATE ROLE {role}"))\n',
    "an HTML text() that is not SQLAlchemy's (Polar's tagflow)": "from tagflow import text\n\n"
    + "def badge(n):\n"
    + '    text(f"SELECT {n} items")\n',
    "a migration": "from alembic import op\n\n"
    + "def upgrade(table):\n"
    + '    op.execute(f"UPDATE {table} SET flag = true")\n',
}


@pytest.mark.parametrize("case", sorted(SQL_POSITIVES))
def test_formatted_sql_is_reported(make_project: Make, case: str) -> None:
    found = run(make_project, SqlStringFormatting, {"app/repo.py": SQL_POSITIVES[case]})
    assert len(found) == 1, found
    assert "runs SQL formatted with" in found[0]


@pytest.mark.parametrize("case", sorted(SQL_NEGATIVES))
def test_safe_sql_look_alikes_are_not_reported(make_project: Make, case: str) -> None:
    assert run(make_project, SqlStringFormatting, {"app/repo.py": SQL_NEGATIVES[case]}) == []


def test_formatted_sql_in_operator_scripts_is_not_reported(make_project: Make) -> None:
    files = {"scripts/backfill.py": SQL_POSITIVES["f-string into text()"]}
    assert run(make_project, SqlStringFormatting, files) == []


def test_formatted_sql_chain_shows_where_it_was_built(make_project: Make) -> None:
    files = {"app/repo.py": SQL_POSITIVES["+ built in a variable, then executed"]}
    (finding,) = SqlStringFormatting().check(make_project(files))
    assert [(s.location.line, s.label) for s in finding.chain] == [
        (2, "query built here"),
        (3, "executed"),
    ]


# --- KA601 -----------------------------------------------------------------------------

ASYNC_APP = {
    "app/db.py": "from sqlalchemy.ext.asyncio import create_async_engine\n\n"
    "def make_engine(url):\n    return create_async_engine(url)\n",
    "app/main.py": "from fastapi import FastAPI\n\napp = FastAPI()\n",
}
SYNC_APP = {
    "app/db.py": "from sqlalchemy import create_engine\n\n"
    "def make_engine(url):\n    return create_engine(url)\n",
    "app/main.py": "from fastapi import FastAPI\n\napp = FastAPI()\n",
}
CLIENT_TEST = (
    "from fastapi.testclient import TestClient\nfrom app.main import app\n\n"
    "def test_home():\n    assert TestClient(app).get('/').status_code == 200\n"
)
ENGINE_FIXTURE = (
    "import pytest\nfrom sqlalchemy.ext.asyncio import create_async_engine\n\n"
    "@pytest.fixture\ndef engine(url):\n    return create_async_engine(url)\n"
)
ONE_SHOT_FIXTURE = (
    "import asyncio\nimport pytest\n\n@pytest.fixture(scope='session')\ndef database_url(url):\n"
    "    asyncio.run(migrate(url))\n    return url\n"
)
RUN_UNTIL_FIXTURE = (
    "import asyncio\nimport pytest\n\n@pytest.fixture()\ndef rows():\n"
    "    loop = asyncio.new_event_loop()\n    return loop.run_until_complete(seed())\n"
)
SYNC_TEST_POSITIVES = {
    "TestClient on the real app": {**ASYNC_APP, "tests/test_api.py": CLIENT_TEST},
    "sync fixture creating an async engine": {**ASYNC_APP, "tests/conftest.py": ENGINE_FIXTURE},
    "sync fixture with run_until_complete": {**ASYNC_APP, "tests/conftest.py": RUN_UNTIL_FIXTURE},
}
SYNC_TEST_NEGATIVES = {
    "a sync fixture returning an async factory (fastapi-users' get_test_client)": {
        **ASYNC_APP,
        "tests/conftest.py": "import httpx\nimport pytest\n\n@pytest.fixture\n"
        "def get_test_client():\n    async def make(app):\n"
        "        async with httpx.AsyncClient(transport=httpx.ASGITransport(app)) as c:\n"
        "            yield c\n    return make\n",
    },
    "a one-shot asyncio.run(migrate()) at session setup (Keel's conftest)": {
        **ASYNC_APP,
        "tests/conftest.py": ONE_SHOT_FIXTURE,
    },
    "the app's database is sync (full-stack template)": {
        **SYNC_APP,
        "tests/test_api.py": CLIENT_TEST,
    },
    "TestClient on a throwaway app built in the test (Polar's CORS test)": {
        **ASYNC_APP,
        "tests/test_cors.py": "from fastapi import FastAPI\nfrom fastapi.testclient import "
        "TestClient\n\ndef test_cors():\n    app = FastAPI()\n"
        "    assert TestClient(app).options('/').status_code == 405\n",
    },
    "a project class named like TestClient (Polar's IsolatedSessionTestClient)": {
        **ASYNC_APP,
        "tests/test_auth.py": "from tests.base import IsolatedSessionTestClient\n\n"
        "async def test_login(app):\n    async with IsolatedSessionTestClient(app) as c:\n"
        "        assert c\n",
    },
    "async fixtures and AsyncClient": {
        **ASYNC_APP,
        "tests/conftest.py": "import pytest_asyncio\nfrom httpx import ASGITransport, "
        "AsyncClient\n\n@pytest_asyncio.fixture\nasync def client(app):\n"
        "    async with AsyncClient(transport=ASGITransport(app=app)) as c:\n        yield c\n",
    },
}


@pytest.mark.parametrize("case", sorted(SYNC_TEST_POSITIVES))
def test_sync_tests_of_an_async_db_app_are_reported(make_project: Make, case: str) -> None:
    found = run(make_project, SyncTestsAsyncDb, SYNC_TEST_POSITIVES[case])
    assert len(found) == 1, found
    assert "app/db.py:4" in found[0]


@pytest.mark.parametrize("case", sorted(SYNC_TEST_NEGATIVES))
def test_sync_test_look_alikes_are_not_reported(make_project: Make, case: str) -> None:
    assert run(make_project, SyncTestsAsyncDb, SYNC_TEST_NEGATIVES[case]) == []


# --- KA602 -----------------------------------------------------------------------------

ASYNC_TEST = "async def test_one():\n    assert 1\n\nasync def test_two():\n    assert 2\n"
NO_MODE_POSITIVES = {
    "no configuration at all": {"tests/test_a.py": ASYNC_TEST},
    "strict mode set, tests unmarked": {
        "pyproject.toml": '[tool.pytest.ini_options]\nasyncio_mode = "strict"\n',
        "tests/test_a.py": ASYNC_TEST,
    },
    "a mark on one class does not cover module functions": {
        "tests/test_a.py": "import pytest\n\n@pytest.mark.anyio\nclass TestX:\n"
        "    async def test_in(self):\n        assert 1\n\n" + ASYNC_TEST,
    },
}
NO_MODE_NEGATIVES = {
    "asyncio_mode = auto in pyproject (minimal template)": {
        "pyproject.toml": '[tool.pytest.ini_options]\nasyncio_mode = "auto"\n',
        "tests/test_a.py": ASYNC_TEST,
    },
    "--asyncio-mode=auto in addopts (realworld)": {
        "setup.cfg": "[tool:pytest]\naddopts = -q --asyncio-mode=auto\n",
        "tests/test_a.py": ASYNC_TEST,
    },
    "pytestmark on the module": {
        "tests/test_a.py": "import pytest\n\npytestmark = pytest.mark.anyio\n\n" + ASYNC_TEST,
    },
    "each test marked (Polar's strict mode)": {
        "pyproject.toml": '[tool.pytest.ini_options]\nasyncio_mode = "strict"\n',
        "tests/test_a.py": "import pytest\n\n@pytest.mark.asyncio\nasync def test_one():\n"
        "    assert 1\n",
    },
    "unittest's IsolatedAsyncioTestCase": {
        "tests/test_a.py": "import unittest\n\nclass T(unittest.IsolatedAsyncioTestCase):\n"
        "    async def test_one(self):\n        self.assertTrue(1)\n",
    },
}


@pytest.mark.parametrize("case", sorted(NO_MODE_POSITIVES))
def test_async_tests_without_mode_are_reported(make_project: Make, case: str) -> None:
    found = run(make_project, AsyncTestsNoMode, NO_MODE_POSITIVES[case])
    assert len(found) == 1, found
    assert "no async mode is configured" in found[0]


def test_async_tests_without_mode_count_the_rest(make_project: Make) -> None:
    (message,) = run(make_project, AsyncTestsNoMode, {"tests/test_a.py": ASYNC_TEST})
    assert message.startswith("tests/test_a.py:1:1 async test test_one")
    assert "(and 1 more in this file)" in message


@pytest.mark.parametrize("case", sorted(NO_MODE_NEGATIVES))
def test_configured_async_tests_are_not_reported(make_project: Make, case: str) -> None:
    assert run(make_project, AsyncTestsNoMode, NO_MODE_NEGATIVES[case]) == []


# --- KA701 -----------------------------------------------------------------------------

TASK_ROUTE = (
    "from fastapi import APIRouter, BackgroundTasks\nfrom app.jobs import {name}\n\n"
    "router = APIRouter()\n\n@router.post('/orders')\n"
    "async def create(tasks: BackgroundTasks):\n    tasks.add_task({name}, 1)\n"
)
TASKS = {
    "app/jobs.py": """\
import asyncio
import time

import tenacity


def notify_all(order_id):
    for user in load_users(order_id):
        send_mail(user)


async def poll_payment(order_id):
    while not await paid(order_id):
        await asyncio.sleep(5)


@tenacity.retry(stop=tenacity.stop_after_attempt(5))
def deliver_webhook(order_id):
    post(order_id)


def wait_then_ping(order_id):
    time.sleep(30)
    ping(order_id)


def log_created(order_id):
    logger.info("order created", order_id=order_id)


def sum_items(order_id):
    return sum(item.price for item in ITEMS)
"""
}


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("notify_all", "processes a batch"),
        ("poll_payment", "loops"),
        ("deliver_webhook", "retries"),
        ("wait_then_ping", "sleeps"),
    ],
)
def test_long_background_work_is_reported(make_project: Make, name: str, reason: str) -> None:
    files = {**TASKS, "app/routes.py": TASK_ROUTE.format(name=name)}
    found = run(make_project, BackgroundTaskLongWork, files)
    assert len(found) == 1, found
    assert f"hands {name} to BackgroundTasks, and it {reason}" in found[0]


@pytest.mark.parametrize("name", ["log_created", "sum_items"])
def test_short_background_work_is_not_reported(make_project: Make, name: str) -> None:
    files = {**TASKS, "app/routes.py": TASK_ROUTE.format(name=name)}
    assert run(make_project, BackgroundTaskLongWork, files) == []


def test_rich_progress_add_task_is_not_background_tasks(make_project: Make) -> None:
    files = {
        **TASKS,
        "app/routes.py": "from fastapi import APIRouter\nfrom rich.progress import Progress\n"
        "from app.jobs import notify_all\n\nrouter = APIRouter()\n\n@router.post('/x')\n"
        "def run(progress: Progress):\n    progress.add_task(notify_all)\n",
    }
    assert run(make_project, BackgroundTaskLongWork, files) == []


# --- KA702 -----------------------------------------------------------------------------

APP = "from fastapi import FastAPI\n\napp = FastAPI(title='Shop')\n"
HEALTH_POSITIVES = {
    "no routes at all": {"app/main.py": APP},
    "only business routes": {
        "app/main.py": APP + "\n@app.get('/items')\ndef items():\n    return []\n"
    },
    "a dict .get('status') is not a route": {
        "app/main.py": APP + "\ndef state(d):\n    return d.get('status')\n"
    },
}
HEALTH_NEGATIVES = {
    "/healthcheck (Dispatch)": {
        "app/main.py": APP + "\n@app.get('/healthcheck', include_in_schema=False)\n"
        "def hc():\n    return {'status': 'ok'}\n"
    },
    "/health-check/ on a router (full-stack template)": {
        "app/main.py": APP,
        "app/utils.py": "from fastapi import APIRouter\n\nrouter = APIRouter()\n\n"
        "@router.get('/health-check/')\nasync def hc() -> bool:\n    return True\n",
    },
    "/healthz in its own router module (Polar)": {
        "app/main.py": APP,
        "app/health/endpoints.py": "from fastapi import APIRouter\n\nrouter = APIRouter()\n\n"
        "@router.get('/healthz')\nasync def healthz():\n    return {'status': 'ok'}\n",
    },
    "a readiness route added with add_api_route": {
        "app/main.py": APP + "\napp.add_api_route('/ready', ready)\n",
    },
    "no FastAPI app (a library)": {
        "lib/thing.py": "from fastapi import APIRouter\n\nrouter = APIRouter()\n"
    },
    "only a library's example app": {"examples/app.py": APP},
}


@pytest.mark.parametrize("case", sorted(HEALTH_POSITIVES))
def test_missing_health_route_is_reported(make_project: Make, case: str) -> None:
    found = run(make_project, NoHealthRoute, HEALTH_POSITIVES[case])
    assert found == [
        "app/main.py:3:7 FastAPI app (Shop) has no health or readiness route (no /health, "
        "/ready, /livez, /ping route anywhere in the project)"
    ]


@pytest.mark.parametrize("case", sorted(HEALTH_NEGATIVES))
def test_health_routes_are_found(make_project: Make, case: str) -> None:
    assert run(make_project, NoHealthRoute, HEALTH_NEGATIVES[case]) == []


# --- KA502 -----------------------------------------------------------------------------

SESSION_HEAD = (
    "from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine\n"
    "from sqlalchemy.orm import sessionmaker\n\nengine = create_async_engine('postgresql+asyncpg://h/db')\n"
)
SESSION_POSITIVES = {
    "async_sessionmaker with defaults": "factory = async_sessionmaker(engine)\n",
    "sessionmaker(class_=AsyncSession)": "factory = sessionmaker(engine, class_=AsyncSession)\n",
    "AsyncSession with expire_on_commit=True": (
        "def session():\n    return AsyncSession(engine, expire_on_commit=True)\n"
    ),
}
SESSION_NEGATIVES = {
    "expire_on_commit=False (Polar, minimal template, Keel)": (
        "factory = async_sessionmaker(engine, expire_on_commit=False)\n"
    ),
    "a sync sessionmaker (Dispatch)": "factory = sessionmaker(bind=engine)\n",
    "options splatted in": "OPTIONS = {'expire_on_commit': False}\n"
    "factory = async_sessionmaker(engine, **OPTIONS)\n",
    "AsyncSession only as an annotation": (
        "async def handler(session: AsyncSession) -> None:\n    await session.commit()\n"
    ),
}


@pytest.mark.parametrize("case", sorted(SESSION_POSITIVES))
def test_async_session_expiring_on_commit_is_reported(make_project: Make, case: str) -> None:
    files = {"app/db.py": SESSION_HEAD + SESSION_POSITIVES[case]}
    found = run(make_project, AsyncSessionExpireOnCommit, files)
    assert len(found) == 1, found
    assert "without expire_on_commit=False" in found[0]


@pytest.mark.parametrize("case", sorted(SESSION_NEGATIVES))
def test_async_session_look_alikes_are_not_reported(make_project: Make, case: str) -> None:
    files = {"app/db.py": SESSION_HEAD + SESSION_NEGATIVES[case]}
    assert run(make_project, AsyncSessionExpireOnCommit, files) == []


def test_async_session_defaults_in_tests_are_not_reported(make_project: Make) -> None:
    files = {
        "tests/conftest.py": SESSION_HEAD + SESSION_POSITIVES["async_sessionmaker with defaults"]
    }
    assert run(make_project, AsyncSessionExpireOnCommit, files) == []


def test_health_evidence_prefers_a_health_route_over_a_status_route(make_project: Make) -> None:
    files = {
        "app/main.py": APP + "\n@app.get('/auth/status')\ndef status():\n    return 1\n"
        "\n@app.get('/healthz')\ndef healthz():\n    return 1\n",
    }
    assert health_route(make_project(files)) == "app/main.py:9 (/healthz)"
