"""A read-only request gives its connection back once its list page is fetched on the
session's connection (`release_connection`, called by `reads_on`), and nothing else changes:
the page is the same, the session's objects stay loaded, a later read works, and any session
that is not read-only, or has pending changes, keeps its connection.

Real commits on the live test database (PostgreSQL with KEEL_TEST_DATABASE_URL, else SQLite).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from sqlalchemy import inspect, select
from sqlalchemy.ext.asyncio import AsyncSession

from keel.core.database import Database, ReadOnlyRequestError, reads_on, release_connection
from keel.core.pagination import PageParams, RowPage, fetch_page
from keel.features.users.models import User
from keel.settings import Settings

PAGE = PageParams(page=1, page_size=10)
EMAILS = select(User.email).order_by(User.email)


@pytest.fixture
async def database(live_settings: Settings) -> AsyncIterator[Database]:
    database = Database.from_settings(live_settings)
    yield database
    await database.dispose()


async def page_on(session: AsyncSession) -> RowPage:
    async with reads_on(session) as reads:
        return await fetch_page(reads, EMAILS, PAGE)


def checked_out(database: Database) -> int:
    count: int = database.engine.sync_engine.pool.checkedout()  # type: ignore[attr-defined]
    return count


@asynccontextmanager
async def reading_a_user(
    database: Database, email: str
) -> AsyncIterator[tuple[AsyncSession, User]]:
    """A committed user, and a read-only session that has loaded it (holding a connection)."""
    async with database.transaction() as writer:
        written = User(email=email, full_name="Pat", password_hash="not-a-hash")
        writer.add(written)
        await writer.flush()
    async with database.read_sessionmaker() as session:
        user = await session.get(User, written.id)
        assert user is not None
        assert checked_out(database) == 1
        yield session, user


async def test_a_read_only_page_gives_its_connection_back_and_keeps_its_objects(
    database: Database,
) -> None:
    async with reading_a_user(database, "a@example.com") as (session, user):
        page = await page_on(session)
        assert checked_out(database) == 0, "released before the request goes on to serialise"
        assert [row.email for row in page.rows] == ["a@example.com"]
        assert page.total == 1
        assert user in session
        assert not inspect(user).expired_attributes
        assert user.email == "a@example.com"  # loaded, not expired: no query needed
        again = await session.execute(select(User.full_name).where(User.id == user.id))
        assert again.scalar_one() == "Pat", "a later read checks a connection out again"
    assert checked_out(database) == 0


async def test_a_writing_session_keeps_its_connection_and_transaction(database: Database) -> None:
    async with database.transaction() as session:
        session.add(User(email="b@example.com", full_name="Sam", password_hash="not-a-hash"))
        await session.flush()
        page = await page_on(session)
        assert checked_out(database) == 1
        assert session.in_transaction()
        assert [row.email for row in page.rows] == ["b@example.com"]
    async with database.read_sessionmaker() as reader:
        committed = await page_on(reader)
    assert [row.email for row in committed.rows] == ["b@example.com"], "the write still commits"


async def test_a_read_only_session_with_pending_changes_is_not_released(
    database: Database,
) -> None:
    async with reading_a_user(database, "c@example.com") as (session, user):
        user.full_name = "changed in a GET"  # a bug: it must still be refused, not dropped
        await release_connection(session)
        assert checked_out(database) == 1
        assert session.in_transaction()
        with pytest.raises(ReadOnlyRequestError):
            await session.flush()


async def test_releasing_a_session_that_never_read_is_a_no_op(database: Database) -> None:
    async with database.read_sessionmaker() as session:
        await release_connection(session)
        assert checked_out(database) == 0
        assert not session.in_transaction()


async def test_releasing_twice_and_an_isolated_test_session_are_harmless(
    database: Database,
) -> None:
    async with database.read_sessionmaker() as session:
        await page_on(session)
        await release_connection(session)
        assert checked_out(database) == 0
    async with database.engine.connect() as connection:
        # A plain session (not read-only) on someone else's connection: left alone.
        plain = AsyncSession(bind=connection)
        await page_on(plain)
        assert plain.in_transaction()
        await plain.close()
