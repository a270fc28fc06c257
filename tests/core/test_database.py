"""The data layer: one session per request, and 503 (never 500 or a hang) when the DB is gone."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import exc as sa_exc
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession

from keel.core.database import (
    Database,
    after_commit,
    after_rollback,
    build_engine,
    commit_now,
    committing,
    discard_changes,
    keep_changes,
    keeps_changes,
)
from keel.core.errors import ConflictError
from keel.main import create_app
from keel.settings import Settings, load_settings
from tests.conftest import MakeSettings
from tests.support import accounts, routes
from tests.support.app import serve
from tests.support.assertions import assert_error_body
from tests.support.databases import POSTGRES_URL
from tests.support.network import closed_port
from tests.support.tcp_proxy import TcpProxy


def unisolated_app(make_settings: MakeSettings, **overrides: object) -> FastAPI:
    """The app on its own engine and pool, as in production (no savepoint override)."""
    application = create_app(make_settings(**overrides))
    application.include_router(routes.router)
    return application


async def test_unreachable_database_gives_503_and_stays_up(make_settings: MakeSettings) -> None:
    url = f"postgresql+asyncpg://postgres@127.0.0.1:{closed_port()}/nowhere"
    application = unisolated_app(make_settings, database_url=url, db_connect_timeout_seconds=1)
    async with serve(application) as http:
        ready = await http.get("/ready")
        route = await http.get("/_test/db")
        health = await http.get("/health")
    error = assert_error_body(ready, 503, "SERVICE_UNAVAILABLE")
    assert error["details"] == {"checks": {"database": "unavailable"}}
    assert ready.headers["retry-after"].isdigit()
    assert_error_body(route, 503, "SERVICE_UNAVAILABLE")
    assert route.headers["retry-after"].isdigit()
    assert "nowhere" not in route.text
    assert "127.0.0.1" not in route.text
    assert health.status_code == 200  # liveness does no I/O


async def test_exhausted_pool_gives_503_not_a_hang(make_settings: MakeSettings) -> None:
    application = unisolated_app(
        make_settings, db_pool_size=1, db_max_overflow=0, db_pool_timeout_seconds=0.2
    )
    async with serve(application) as http:
        holder = asyncio.create_task(http.get("/_test/hold", params={"seconds": 1.0}))
        await asyncio.sleep(0.3)
        starved = await asyncio.wait_for(http.get("/_test/db"), timeout=5)
        held = await holder
    assert held.status_code == 200
    assert_error_body(starved, 503, "SERVICE_UNAVAILABLE")
    assert starved.headers["retry-after"] == "5"


async def test_a_page_request_needs_one_pooled_connection_at_a_time(
    make_settings: MakeSettings,
) -> None:
    """The caller's lookup and the page each borrow a connection and give it back (orders),
    or the page reads on the session's (jobs): with one connection in the pool, a request
    that held one while waiting for another would wait out the pool timeout (503)."""
    application = unisolated_app(
        make_settings, db_pool_size=1, db_max_overflow=0, db_pool_timeout_seconds=0.5
    )
    async with serve(application) as http:
        account = await accounts.signed_up(http)
        answers = [
            await http.get(path, headers=account.headers)
            for path in ("/api/v1/orders", "/api/v1/jobs", "/api/v1/users/me", "/api/v1/products")
        ]
    assert [answer.status_code for answer in answers] == [200, 200, 200, 200]
    assert answers[0].json()["items"] == [] == answers[1].json()["items"]
    assert answers[2].json()["email"] == account.email


async def test_request_session_commits_on_success_and_rolls_back_on_error(
    make_settings: MakeSettings,
) -> None:
    label = uuid.uuid4().hex
    application = unisolated_app(make_settings)
    async with serve(application) as http:
        failed = await http.post(f"/_test/probe/{label}-failed", params={"fail": True})
        kept = await http.post(f"/_test/probe/{label}-kept")
        failed_count = (await http.get(f"/_test/probe/{label}-failed")).json()["count"]
        kept_count = (await http.get(f"/_test/probe/{label}-kept")).json()["count"]
        database = Database.from_settings(make_settings())
        async with database.engine.begin() as connection:
            await connection.execute(
                text("DELETE FROM test_probe WHERE label LIKE :p"), {"p": f"{label}%"}
            )
        await database.dispose()
    assert failed.status_code == 409
    assert kept.status_code == 200
    assert failed_count == 0, "a failed request must leave no partial rows"
    assert kept_count == 1


async def _probe_counts(make_settings: MakeSettings, label: str) -> dict[str, int]:
    """Committed probe rows per label starting with `label`, read on a fresh engine (what
    other requests see), then deleted."""
    database = Database.from_settings(make_settings())
    try:
        async with database.engine.begin() as connection:
            rows = await connection.execute(
                text("SELECT label, COUNT(*) FROM test_probe WHERE label LIKE :p GROUP BY label"),
                {"p": f"{label}%"},
            )
            counts = {found.removeprefix(label): count for found, count in rows}
            await connection.execute(
                text("DELETE FROM test_probe WHERE label LIKE :p"), {"p": f"{label}%"}
            )
    finally:
        await database.dispose()
    return counts


async def test_an_error_raised_through_keep_changes_commits_and_is_answered(
    make_settings: MakeSettings,
) -> None:
    label = uuid.uuid4().hex
    async with serve(unisolated_app(make_settings)) as http:
        kept = await http.post(f"/_test/probe/{label}-kept", params={"keep": True})
        plain = await http.post(f"/_test/probe/{label}-plain", params={"fail": True})
        replaced = await http.post(f"/_test/probe-replaced/{label}-replaced")
    error = assert_error_body(kept, 409, "CONFLICT")
    assert (error["message"], error["details"]) == ("kept after writing", {"kept": True})
    assert_error_body(plain, 409, "CONFLICT")
    assert_error_body(replaced, 400, "BAD_REQUEST")
    assert await _probe_counts(make_settings, label) == {"-kept": 1}, (
        "only the error raised through keep_changes commits; a plain one, or another error "
        "raised in place of a kept one, rolls back"
    )


class _Recorder:
    def __init__(self) -> None:
        self.calls: list[str] = []

    def callback(self, name: str) -> Callable[[], Awaitable[None]]:
        async def record() -> None:
            self.calls.append(name)

        return record


async def _run_committing(
    session: AsyncSession, label: str, recorder: _Recorder, error: Exception | None
) -> None:
    async with committing(session):
        await session.execute(text("INSERT INTO test_probe (label) VALUES (:l)"), {"l": label})
        after_commit(session, recorder.callback("committed"))
        after_rollback(session, recorder.callback("rolled back"))
        if error is not None:
            raise error


@pytest.mark.parametrize(
    ("keep", "expected_calls", "expected_rows"),
    [(True, ["committed"], {"": 1}), (False, ["rolled back"], {})],
)
async def test_keep_changes_commits_the_transaction_and_runs_its_after_commit_callbacks(
    make_settings: MakeSettings,
    keep: bool,
    expected_calls: list[str],
    expected_rows: dict[str, int],
) -> None:
    """Outside requests too (jobs, commands): `committing` honours the mark, and the
    callbacks follow what really happened to the transaction."""
    label, recorder = uuid.uuid4().hex, _Recorder()
    database = Database.from_settings(make_settings())
    try:
        async with database.sessionmaker() as session:
            error = ConflictError("refused")
            with pytest.raises(ConflictError) as raised:
                await _run_committing(
                    session, label, recorder, keep_changes(session, error) if keep else error
                )
            assert raised.value is error
            assert not keeps_changes(session, error), "the mark ends with its transaction"
    finally:
        await database.dispose()
    assert recorder.calls == expected_calls
    assert await _probe_counts(make_settings, label) == expected_rows


async def test_commit_now_publishes_and_discard_changes_undoes_only_what_follows(
    make_settings: MakeSettings,
) -> None:
    label, recorder = uuid.uuid4().hex, _Recorder()
    database = Database.from_settings(make_settings())
    try:
        async with database.sessionmaker() as session, committing(session):
            insert = text("INSERT INTO test_probe (label) VALUES (:l)")
            await session.execute(insert, {"l": f"{label}-published"})
            after_commit(session, recorder.callback("published"))
            await commit_now(session)
            seen_by_others = await _probe_counts(make_settings, f"{label}-published")
            await session.execute(insert, {"l": f"{label}-discarded"})
            after_commit(session, recorder.callback("discarded committed"))
            after_rollback(session, recorder.callback("discarded rolled back"))
            await discard_changes(session)
            await session.execute(insert, {"l": f"{label}-last"})
    finally:
        await database.dispose()
    assert seen_by_others == {"": 1}, "commit_now makes the row visible to other connections"
    assert recorder.calls == ["published", "discarded rolled back"]
    # (the published row was deleted by the read above)
    assert await _probe_counts(make_settings, label) == {"-last": 1}


async def test_safe_methods_get_a_read_only_session(make_settings: MakeSettings) -> None:
    label = uuid.uuid4().hex
    application = unisolated_app(make_settings)
    async with serve(application) as http:
        refused = await http.get(f"/_test/write-in-get/{label}")
        probe = await http.get(f"/_test/probe/{label}")
        count = probe.json()["count"]
    assert_error_body(refused, 500, "INTERNAL_ERROR")
    assert count == 0, "the refused write must leave nothing behind"


async def test_isolated_tests_do_not_see_each_others_writes(client: httpx.AsyncClient) -> None:
    """Runs under the savepoint override: the write is visible now and gone after the test."""
    assert (await client.post("/_test/probe/isolation")).status_code == 200
    assert (await client.get("/_test/probe/isolation")).json() == {"count": 1}


async def test_isolated_tests_do_not_see_each_others_writes_again(
    client: httpx.AsyncClient,
) -> None:
    assert (await client.post("/_test/probe/isolation")).status_code == 200
    assert (await client.get("/_test/probe/isolation")).json() == {"count": 1}


@pytest.mark.skipif(not POSTGRES_URL, reason="needs KEEL_TEST_DATABASE_URL (PostgreSQL)")
async def test_recovers_when_the_database_comes_back(make_settings: MakeSettings) -> None:
    assert POSTGRES_URL is not None
    target = make_url(POSTGRES_URL)
    proxy = TcpProxy(target.host or "127.0.0.1", target.port or 5432)
    await proxy.start()
    via_proxy = target.set(port=proxy.port).render_as_string(hide_password=False)
    application = unisolated_app(
        make_settings, database_url=via_proxy, db_connect_timeout_seconds=1
    )
    try:
        async with serve(application) as http:
            before = await http.get("/_test/db")
            await proxy.stop()
            down = await http.get("/_test/db")
            not_ready = await http.get("/ready")
            await proxy.start()
            up = await http.get("/_test/db")
            ready = await http.get("/ready")
    finally:
        await proxy.stop()
    assert before.status_code == 200
    assert_error_body(down, 503, "SERVICE_UNAVAILABLE")
    assert not_ready.status_code == 503
    assert up.status_code == 200
    assert up.json() == {"value": 1}
    assert ready.json() == {"status": "ok", "checks": {"database": "ok"}}


def test_sqlite_directory_is_created_and_pragmas_set(tmp_path: Path) -> None:
    target = tmp_path / "nested" / "dir" / "keel.db"
    settings = load_settings(database_url=f"sqlite+aiosqlite:///{target}", _env_file=None)
    database = Database.from_settings(settings)

    async def pragmas() -> tuple[str, int]:
        async with database.engine.connect() as connection:
            mode = (await connection.execute(text("PRAGMA journal_mode"))).scalar_one()
            fks = (await connection.execute(text("PRAGMA foreign_keys"))).scalar_one()
        await database.dispose()
        return mode, fks

    assert target.parent.is_dir()
    assert asyncio.run(pragmas()) == ("wal", 1)


def test_postgres_engine_takes_pool_settings_from_config() -> None:
    settings = load_settings(
        database_url="postgresql+asyncpg://u@127.0.0.1/db",
        db_pool_size=7,
        db_max_overflow=3,
        _env_file=None,
    )
    engine = build_engine(settings)
    assert engine.pool.size() == 7  # type: ignore[attr-defined]
    assert engine.pool._max_overflow == 3  # type: ignore[attr-defined]


@pytest.mark.skipif(not POSTGRES_URL, reason="needs KEEL_TEST_DATABASE_URL (PostgreSQL)")
async def test_a_statement_over_the_timeout_gives_503_and_keeps_the_connection(
    make_settings: MakeSettings,
) -> None:
    application = unisolated_app(
        make_settings, db_pool_size=1, db_max_overflow=0, db_statement_timeout_seconds=0.5
    )
    async with serve(application) as http:
        started = asyncio.get_running_loop().time()
        slow = await asyncio.wait_for(http.get("/_test/db-sleep", params={"seconds": 5}), 10)
        elapsed = asyncio.get_running_loop().time() - started
        after = await http.get("/_test/db")
    assert_error_body(slow, 503, "SERVICE_UNAVAILABLE")
    assert slow.headers["retry-after"].isdigit()
    assert elapsed < 2, f"the statement ran {elapsed:.1f} s"
    assert after.json() == {"value": 1}, "the server cancelled it; the connection is still good"


BLACKHOLE_BOUND_SECONDS = 1.0
"""Statement, connect and pool timeouts in the blackhole test: each request must end within a
few of these (a pooled connection's statement times out, a new one's connect times out, and a
request that waits for the pool waits this long at most)."""


@pytest.mark.skipif(not POSTGRES_URL, reason="needs KEEL_TEST_DATABASE_URL (PostgreSQL)")
async def test_a_blackholed_database_gives_503_within_the_configured_time(
    make_settings: MakeSettings, live_settings: Settings
) -> None:
    """Packets dropped, not refused: no error ever arrives, so only timeouts can end a request.

    Authenticated `/users/me` and a bare query, on pooled connections that go silent
    mid-connection and on new connections that are accepted and never answered.
    """
    target = make_url(live_settings.database_url)
    proxy = TcpProxy(target.host or "127.0.0.1", target.port or 5432)
    await proxy.start()
    via_proxy = target.set(port=proxy.port).render_as_string(hide_password=False)
    application = unisolated_app(
        make_settings,
        database_url=via_proxy,
        db_pool_size=5,
        db_max_overflow=5,
        db_connect_timeout_seconds=BLACKHOLE_BOUND_SECONDS,
        db_statement_timeout_seconds=BLACKHOLE_BOUND_SECONDS,
        db_pool_timeout_seconds=BLACKHOLE_BOUND_SECONDS,
    )

    async def timed(path: str, headers: dict[str, str]) -> tuple[float, httpx.Response]:
        started = asyncio.get_running_loop().time()
        response = await http.get(path, headers=headers, timeout=60)
        return asyncio.get_running_loop().time() - started, response

    try:
        async with serve(application) as http:
            account = await accounts.signed_up(http)
            # Fill the pool with open connections, which the blackhole then silences.
            await asyncio.gather(
                *(http.get("/_test/hold", params={"seconds": 0.3}) for _ in range(8))
            )
            proxy.blackhole()
            results = await asyncio.gather(
                *(timed("/api/v1/users/me", account.headers) for _ in range(15)),
                *(timed("/_test/db", {}) for _ in range(15)),
            )
            proxy.restore()
            recovered = await http.get("/api/v1/users/me", headers=account.headers)
    finally:
        await proxy.stop()
    longest = max(seconds for seconds, _ in results)
    for _, response in results:
        assert_error_body(response, 503, "SERVICE_UNAVAILABLE")
        assert response.headers["retry-after"].isdigit()
    assert longest < 6 * BLACKHOLE_BOUND_SECONDS, f"the longest request took {longest:.1f} s"
    assert recovered.status_code == 200, "fresh connections must work once the network is back"


@pytest.mark.skipif(not POSTGRES_URL, reason="needs KEEL_TEST_DATABASE_URL (PostgreSQL)")
async def test_migration_engines_are_not_bound_by_the_statement_timeout(
    make_settings: MakeSettings,
) -> None:
    """A migration may rightly outlast any request (an index build on a big table)."""
    settings = make_settings(db_statement_timeout_seconds=0.5)
    bounded = Database.from_settings(settings)
    unbounded = Database.from_settings(settings, bounded=False)
    try:
        async with unbounded.engine.connect() as connection:
            await connection.execute(text("SELECT pg_sleep(1)"))
        async with bounded.engine.connect() as connection:
            with pytest.raises(sa_exc.DBAPIError) as raised:
                await connection.execute(text("SELECT pg_sleep(1)"))
        assert getattr(raised.value.orig, "sqlstate", None) == "57014"
    finally:
        await bounded.dispose()
        await unbounded.dispose()
