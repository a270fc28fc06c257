"""KA201 (blocking call in async code, through the project's own functions) and KA202."""

from __future__ import annotations

from collections.abc import Callable

from keel_audit.model import Finding

Audit = Callable[..., list[Finding]]

HELPERS = """
    import requests
    import time
    from pathlib import Path

    def fetch_profile(user_id):
        return requests.get(f"https://profiles/{user_id}", timeout=5).json()

    def load(user_id):
        return fetch_profile(user_id)

    def read_template():
        return Path("template.txt").read_text()

    def pause():
        time.sleep(0.1)
"""


def lines(findings: list[Finding]) -> list[tuple[str, int]]:
    return [(f.location.path, f.location.line) for f in findings]


# -- KA201: true positives ------------------------------------------------------------------


def test_direct_blocking_calls_in_async_def(audit: Audit) -> None:
    findings = audit(
        {
            "app/api.py": """
                import subprocess, time, requests, sqlite3

                async def handler():
                    time.sleep(1)
                    requests.post("https://x", timeout=1)
                    subprocess.run(["ls"], check=True)
                    sqlite3.connect("x.db")
                    with open("f") as handle:
                        return handle.read()
            """
        },
        codes=("KA201",),
    )
    assert lines(findings) == [("app/api.py", n) for n in (5, 6, 7, 8, 9)]
    assert "time.sleep (sleep) blocks the event loop in async def handler" in findings[0].message
    assert findings[4].message.startswith("builtins.open (file I/O)")


def test_blocking_call_through_helpers_in_other_modules_shows_the_chain(audit: Audit) -> None:
    findings = audit(
        {
            "app/__init__.py": "",
            "app/helpers.py": HELPERS,
            "app/api.py": """
                from app import helpers

                async def get_user(user_id: int):
                    return helpers.load(user_id)
            """,
        },
        codes=("KA201",),
    )
    assert len(findings) == 1
    finding = findings[0]
    assert (finding.location.path, finding.location.line) == ("app/api.py", 5)
    assert finding.message == (
        "async def get_user calls app.helpers.load, which blocks: requests.get (sync HTTP)"
    )
    assert [(s.location.path, s.location.line, s.label) for s in finding.chain] == [
        ("app/api.py", 4, "async def get_user"),
        ("app/api.py", 5, "calls app.helpers.load"),
        ("app/helpers.py", 10, "calls app.helpers.fetch_profile"),
        ("app/helpers.py", 7, "requests.get (sync HTTP)"),
    ]


def test_sync_session_dependency_and_module_level_clients(audit: Audit) -> None:
    findings = audit(
        {
            "app/__init__.py": "",
            "app/db.py": """
                import redis
                from sqlalchemy.orm import sessionmaker
                cache = redis.Redis()
                SessionLocal = sessionmaker()
            """,
            "app/routes.py": """
                from typing import Annotated
                from fastapi import Depends
                from sqlalchemy.orm import Session
                from app.db import SessionLocal, cache

                SessionDep = Annotated[Session, Depends()]

                async def list_items(db: SessionDep):
                    return db.query(1).all()

                async def cached():
                    return cache.get("k")

                async def made_here():
                    with SessionLocal() as session:
                        session.execute("select 1")
            """,
        },
        codes=("KA201",),
    )
    assert lines(findings) == [("app/routes.py", 10), ("app/routes.py", 13), ("app/routes.py", 17)]
    assert "db.query (sync SQLAlchemy session)" in findings[0].message
    assert "cache.get (sync Redis client)" in findings[1].message


def test_re_exported_helper_and_self_method_are_followed(audit: Audit) -> None:
    findings = audit(
        {
            "svc/__init__.py": "from .helpers import pause\n",
            "svc/helpers.py": HELPERS,
            "svc/api.py": """
                from svc import pause

                class Service:
                    def _slow(self):
                        pause()

                    async def run(self):
                        self._slow()

                async def endpoint():
                    pause()
            """,
        },
        codes=("KA201",),
    )
    assert lines(findings) == [("svc/api.py", 9), ("svc/api.py", 12)]
    assert findings[0].chain[-1].label == "time.sleep (sleep)"
    assert findings[1].message.endswith("calls svc.helpers.pause, which blocks: time.sleep (sleep)")


# -- KA201: look-alikes that must stay silent ---------------------------------------------


def test_sync_helper_only_called_from_sync_code_is_not_reported(audit: Audit) -> None:
    findings = audit(
        {
            "app/__init__.py": "",
            "app/helpers.py": HELPERS,
            "app/cli.py": """
                from app.helpers import load, read_template

                def main():
                    load(1)
                    return read_template()

                def sync_route():
                    with open("x") as handle:
                        return handle.read()
            """,
        },
        codes=("KA201",),
    )
    assert findings == []


def test_awaited_async_equivalents_and_threads_are_not_blocking(audit: Audit) -> None:
    findings = audit(
        {
            "app/__init__.py": "",
            "app/helpers.py": HELPERS,
            "app/api.py": """
                import asyncio
                import anyio
                import httpx
                from app.helpers import load

                async def handler(path: anyio.Path):
                    await asyncio.sleep(1)
                    async with httpx.AsyncClient() as client:
                        await client.get("https://x")
                    await path.read_text()
                    await asyncio.to_thread(load, 1)
                    await asyncio.get_running_loop().run_in_executor(None, load, 2)
                    return lambda: load(3)

                async def nested():
                    def later():
                        return load(4)
                    return later
            """,
        },
        codes=("KA201",),
    )
    assert findings == []


def test_unknown_objects_and_tests_are_not_reported(audit: Audit) -> None:
    findings = audit(
        {
            "app/api.py": """
                import time

                async def handler(client, session):
                    client.get("https://x")
                    session.query(1)
                    sleep = time.monotonic()
                    return sleep
            """,
            "tests/test_api.py": """
                import time

                async def test_slow():
                    time.sleep(0.01)
            """,
        },
        codes=("KA201",),
    )
    assert findings == []


def test_lifespans_lazy_initialisation_and_cached_helpers_are_not_reported(
    audit: Audit,
) -> None:
    findings = audit(
        {
            "app/main.py": """
                import functools
                import requests

                _logger = None

                def _configure():
                    return open("log.txt", "a")

                def get_logger():
                    global _logger
                    if _logger is None:
                        _logger = _configure()
                    return _logger

                @functools.lru_cache
                def settings():
                    return open("settings.toml").read()

                async def lifespan(app):
                    requests.get("https://warm-up", timeout=1)
                    yield

                async def handler():
                    get_logger()
                    return settings()
            """,
        },
        codes=("KA201",),
    )
    assert findings == []


# -- KA202 -----------------------------------------------------------------------------------


def test_threads_wrapping_io_with_async_equivalents(audit: Audit) -> None:
    findings = audit(
        {
            "app/__init__.py": "",
            "app/helpers.py": HELPERS,
            "app/api.py": """
                import asyncio
                import time
                import requests
                from starlette.concurrency import run_in_threadpool
                from app.helpers import load

                async def a():
                    await asyncio.to_thread(time.sleep, 1)
                    await run_in_threadpool(requests.get, "https://x")
                    loop = asyncio.get_running_loop()
                    await loop.run_in_executor(None, load, 1)
                    await loop.run_in_executor(None, lambda: requests.get("https://y"))
            """,
        },
        codes=("KA202",),
    )
    assert lines(findings) == [("app/api.py", n) for n in (9, 10, 12, 13)]
    assert findings[0].message.endswith("it has an async equivalent: asyncio.sleep")
    assert findings[2].chain[-1].label == "requests.get (sync HTTP)"
    assert all(f.severity.label == "info" for f in findings)


def test_threads_for_work_without_async_equivalent_are_fine(audit: Audit) -> None:
    findings = audit(
        {
            "app/__init__.py": "",
            "app/helpers.py": HELPERS,
            "app/api.py": """
                import asyncio
                from app.helpers import read_template

                def resize(image):
                    return image[::2]

                async def a(image):
                    await asyncio.to_thread(read_template)
                    await asyncio.to_thread(resize, image)
                    await asyncio.to_thread(open, "f")
                    await asyncio.get_running_loop().run_in_executor(None, sorted, image)
            """,
        },
        codes=("KA202",),
    )
    assert findings == []
