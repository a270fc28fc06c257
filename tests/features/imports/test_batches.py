"""The import's batches on the database itself (PostgreSQL: COPY into the session's staging
table and one upsert; SQLite: an executemany upsert), called as the job and the CLI call it.

A batch is one transaction: all its rows are in `products`, or none. These tests break it on
purpose (a trigger refusing one SKU, a cancellation at a checkpoint) and look at what stayed.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError

from keel.core.cache import ReadCache
from keel.core.database import Database
from keel.core.jobs.handlers import JobCancelledError
from keel.features.catalog.models import Product
from keel.features.catalog.repository import STAGING_TABLE
from keel.features.imports.products import (
    ImportResult,
    MalformedFileError,
    check_file,
    import_products,
)
from keel.settings import Settings

HEADER = "sku,name,description,price,currency,stock,is_active\n"


def good(sku: str, name: str = "Fine", price: int = 100) -> str:
    return f"{sku},{name},,{price},EUR,1,true"


def csv_bytes(*rows: str, header: str = HEADER) -> bytes:
    return (header + "".join(f"{row}\n" for row in rows)).encode()


async def chunks_of(data: bytes, size: int = 7) -> AsyncIterator[bytes]:
    """Small chunks, so records end across them (and progress has many positions)."""
    for start in range(0, len(data), size):
        yield data[start : start + size]


@pytest.fixture
async def database(live_settings: Settings) -> AsyncIterator[Database]:
    """The app's engine with a one-connection pool: every import and check here meets the
    connection the import used, and whatever it left on it."""
    settings = live_settings.model_copy(update={"db_pool_size": 1, "db_max_overflow": 0})
    database = Database.from_settings(settings)
    try:
        yield database
    finally:
        await database.dispose()


@pytest.fixture
async def cache(live_settings: Settings) -> AsyncIterator[ReadCache]:
    cache = ReadCache.from_settings(live_settings)
    try:
        yield cache
    finally:
        await cache.close()


async def run_import(
    database: Database,
    cache: ReadCache,
    data: bytes,
    *,
    batch_size: int = 3,
    progress: list[int] | None = None,
    cancel_after: int | None = None,
) -> ImportResult:
    seen = [] if progress is None else progress

    async def report(done: int) -> None:
        seen.append(done)
        if cancel_after is not None and len(seen) >= cancel_after:
            raise JobCancelledError

    await check_file(chunks_of(data))
    return await import_products(
        database, cache, chunks_of(data), batch_size=batch_size, max_errors=100, progress=report
    )


async def stored(database: Database) -> dict[str, Product]:
    async with database.read_sessionmaker() as session:
        return {p.sku: p for p in await session.scalars(select(Product))}


async def staging_left(database: Database) -> bool:
    """Whether the pool's connection still holds a staging table (PostgreSQL)."""
    if database.dialect != "postgresql":
        return False
    async with database.engine.connect() as connection:
        found = await connection.scalar(text(f"SELECT to_regclass('pg_temp.{STAGING_TABLE}')"))
    return found is not None


async def refuse_sku(database: Database, sku: str) -> None:
    """A trigger that fails any write of `sku` into products, as a crash in the middle of a
    batch would: the statement fails after the batch's other rows were sent."""
    async with database.engine.begin() as connection:
        if database.dialect == "postgresql":
            await connection.execute(
                text(
                    "CREATE FUNCTION refuse_sku() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                    f"IF NEW.sku = '{sku}' THEN RAISE EXCEPTION 'refused'; END IF; "
                    "RETURN NEW; END $$"
                )
            )
            await connection.execute(
                text(
                    "CREATE TRIGGER refuse_sku BEFORE INSERT OR UPDATE ON products "
                    "FOR EACH ROW EXECUTE FUNCTION refuse_sku()"
                )
            )
        else:
            await connection.execute(
                text(
                    "CREATE TRIGGER refuse_sku BEFORE INSERT ON products "
                    f"WHEN NEW.sku = '{sku}' BEGIN SELECT RAISE(ABORT, 'refused'); END"
                )
            )


async def drop_trigger(database: Database) -> None:
    async with database.engine.begin() as connection:
        if database.dialect == "postgresql":
            await connection.execute(text("DROP TRIGGER refuse_sku ON products"))
            await connection.execute(text("DROP FUNCTION refuse_sku()"))
        else:
            await connection.execute(text("DROP TRIGGER refuse_sku"))


async def test_bad_rows_between_good_ones_are_reported_and_the_rest_stored(
    database: Database, cache: ReadCache
) -> None:
    data = csv_bytes(
        good("G-1", price=1),
        "B-1,Bad price,,12.5x,EUR,1,true",
        good("G-2", price=2),
        "B-2,Too rich,,1000000000001,EUR,1,true",
        "B-3,Huge stock,,1,EUR,9223372036854775808,true",
        good("G-3", price=3),
        "B-4,Nul\x00name,,1,EUR,1,true",
        "B-5,Short row",
        good("G-4", price=4),
        f"{'S' * 65},Long sku,,1,EUR,1,true",
        good("G-5", price=5),
    )
    progress: list[int] = []
    result = await run_import(database, cache, data, batch_size=2, progress=progress)
    products = await stored(database)
    assert (result.created, result.updated, result.failed) == (5, 0, 6)
    assert [(e["row"], e["column"]) for e in result.errors] == [
        (3, "price"),
        (5, "price"),
        (6, "stock"),
        (8, "name"),
        (9, None),
        (11, "sku"),
    ]
    assert "NUL" in result.errors[3]["message"]
    assert "less than or equal to 1000000000000" in result.errors[1]["message"]
    assert sorted(products) == ["G-1", "G-2", "G-3", "G-4", "G-5"]
    assert [products[f"G-{n}"].price_amount for n in range(1, 6)] == [1, 2, 3, 4, 5]
    assert progress == sorted(progress)
    assert len(progress) == 2  # after each full batch of two
    assert not await staging_left(database)


async def test_repeated_skus_in_one_batch_and_across_batches_end_as_the_last_row(
    database: Database, cache: ReadCache
) -> None:
    data = csv_bytes(
        good("D-1", "first", 1),
        good("D-2", "first", 1),
        good("D-1", "second", 2),  # the same batch: it is written first, then this row
        good("D-3", "first", 1),
        good("D-4", "first", 1),
        good("D-5", "first", 1),
        good("D-2", "last", 3),  # a later batch
        good("D-1", "last", 3),
    )
    result = await run_import(database, cache, data, batch_size=3)
    products = await stored(database)
    assert (result.created, result.updated, result.failed) == (5, 3, 0)
    assert {sku: (p.name, p.price_amount) for sku, p in products.items()} == {
        "D-1": ("last", 3),
        "D-2": ("last", 3),
        "D-3": ("first", 1),
        "D-4": ("first", 1),
        "D-5": ("first", 1),
    }


async def test_cancelling_at_a_checkpoint_keeps_the_batches_before_it_only(
    database: Database, cache: ReadCache
) -> None:
    rows = [good(f"C-{n:03d}") for n in range(30)]
    with pytest.raises(JobCancelledError):
        await run_import(database, cache, csv_bytes(*rows), batch_size=4, cancel_after=2)
    products = await stored(database)
    # Two batches were written, then the checkpoint after the second said stop: the batch
    # being checked meanwhile is never written.
    assert sorted(products) == [f"C-{n:03d}" for n in range(8)]
    assert not await staging_left(database)
    again = await run_import(database, cache, csv_bytes(*rows), batch_size=4)
    assert (again.created, again.updated) == (22, 8)
    assert len(await stored(database)) == 30


async def test_a_batch_that_fails_in_the_database_leaves_none_of_its_rows(
    database: Database, cache: ReadCache
) -> None:
    rows = [good(f"R-{n}") for n in range(1, 11)]
    rows[5] = good("BOOM-1")  # the second batch of four, BOOM-1, R-8
    await refuse_sku(database, "BOOM-1")
    try:
        with pytest.raises(DBAPIError, match="refused"):
            await run_import(database, cache, csv_bytes(*rows), batch_size=4)
        products = await stored(database)
        assert sorted(products) == ["R-1", "R-2", "R-3", "R-4"]  # the first batch only
        assert not await staging_left(database)
    finally:
        await drop_trigger(database)
    again = await run_import(database, cache, csv_bytes(*rows), batch_size=4)
    # Nothing of the failed batch was left staged to be written twice.
    assert (again.created, again.updated, again.failed) == (6, 4, 0)
    assert len(await stored(database)) == 10


async def test_concurrent_imports_do_not_share_their_staging(
    live_settings: Settings, cache: ReadCache
) -> None:
    database = Database.from_settings(live_settings)
    try:
        first, second = await asyncio.gather(
            run_import(database, cache, csv_bytes(*[good(f"A-{n}") for n in range(40)])),
            run_import(database, cache, csv_bytes(*[good(f"B-{n}") for n in range(50)])),
        )
        products = await stored(database)
    finally:
        await database.dispose()
    assert (first.created, first.updated) == (40, 0)
    assert (second.created, second.updated) == (50, 0)
    assert len(products) == 90


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (csv_bytes(good("H-1"), header="sku,name,price,currency\n"), "missing the columns"),
        (b"\n\n", "empty"),
        (csv_bytes(good("H-1")) + "H-2,Café,,1,EUR,1,true\n".encode("latin-1"), "not UTF-8"),
    ],
)
async def test_a_bad_file_imports_nothing(
    database: Database, cache: ReadCache, data: bytes, message: str
) -> None:
    with pytest.raises(MalformedFileError, match=message):
        await run_import(database, cache, data)
    assert await stored(database) == {}


async def test_a_header_error_is_found_before_any_batch_is_written(
    database: Database, cache: ReadCache
) -> None:
    """`import_products` itself, without `check_file` first, refuses the header at once."""
    data = csv_bytes(*[good(f"N-{n}") for n in range(10)], header="sku,name,description\n")
    with pytest.raises(MalformedFileError, match="price, currency, stock, is_active"):
        await import_products(
            database, cache, chunks_of(data), batch_size=2, max_errors=10, progress=_ignore
        )
    assert await stored(database) == {}
    assert not await staging_left(database)


async def _ignore(done: int) -> None:
    return None
