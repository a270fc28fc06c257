"""SQL for products."""

from __future__ import annotations

import functools
import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import (
    Select,
    String,
    UnaryExpression,
    and_,
    bindparam,
    func,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.dialects import sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from keel.core.models import utcnow
from keel.core.repository import Rows
from keel.core.sql import LIKE_ESCAPE, contains_pattern, try_flush, update_where
from keel.features.catalog.models import Product
from keel.features.catalog.schemas import ProductFilters, ProductSort

ORDERING: dict[ProductSort, UnaryExpression[Any]] = {
    ProductSort.NAME: Product.name.asc(),
    ProductSort.NAME_DESC: Product.name.desc(),
    ProductSort.PRICE: Product.price_amount.asc(),
    ProductSort.PRICE_DESC: Product.price_amount.desc(),
    ProductSort.CREATED_AT: Product.created_at.asc(),
    ProductSort.CREATED_AT_DESC: Product.created_at.desc(),
}


PAGE_COLUMNS: tuple[Any, ...] = (
    Product.id,
    Product.sku,
    Product.name,
    Product.description,
    Product.price_amount,
    Product.currency,
    Product.stock,
    Product.is_active,
    Product.image_file_id,
    Product.created_at,
    Product.updated_at,
)


def filtered(
    filters: ProductFilters, *, include_inactive: bool
) -> tuple[Select[Any], dict[str, Any]]:
    """A page's columns, and the values of its bound parameters. `q` is matched in SQL as
    `lower(column) LIKE '%q%'`, the expression the trigram indexes of PostgreSQL are built on
    (migration 0010).

    The statement depends only on which filters are set (a few hundred combinations at
    most), so each is built once and `fetch_page` reuses its paged form; the values are
    bound per request. The SQL is the one a statement built with the values would have."""
    values: dict[str, Any] = {}
    if filters.q:
        values["q_pattern"] = contains_pattern(filters.q)
    if filters.min_price is not None:
        values["min_price"] = filters.min_price
    if filters.max_price is not None:
        values["max_price"] = filters.max_price
    statement = _shaped(
        filters.sort,
        include_inactive,
        "q_pattern" in values,
        "min_price" in values,
        "max_price" in values,
        filters.in_stock,
    )
    return statement, values


@functools.cache
def _shaped(
    sort: ProductSort,
    include_inactive: bool,
    q: bool,
    min_price: bool,
    max_price: bool,
    in_stock: bool | None,
) -> Select[Any]:
    # The id breaks ties, so pages are stable when names or prices repeat.
    statement = select(*PAGE_COLUMNS).order_by(ORDERING[sort], Product.id)
    if not include_inactive:
        statement = statement.where(Product.is_active.is_(True))
    if q:
        pattern = bindparam("q_pattern", type_=String)
        statement = statement.where(
            or_(
                func.lower(Product.name).like(pattern, escape=LIKE_ESCAPE),
                func.lower(Product.sku).like(pattern, escape=LIKE_ESCAPE),
            )
        )
    if min_price:
        statement = statement.where(Product.price_amount >= bindparam("min_price"))
    if max_price:
        statement = statement.where(Product.price_amount <= bindparam("max_price"))
    if in_stock is True:
        statement = statement.where(Product.stock > 0)
    elif in_stock is False:
        statement = statement.where(Product.stock == 0)
    return statement


get = Rows(Product).get


async def insert(session: AsyncSession, product: Product) -> bool:
    """Add a new product; False if its SKU is taken (nothing is added)."""
    return await try_flush(session, add=product)


async def save(session: AsyncSession) -> bool:
    """Write the changes made to loaded products; False if one's new SKU is taken."""
    return await try_flush(session)


async def delete_unless_referenced(session: AsyncSession, product: Product) -> bool:
    """Delete the product; False if orders refer to it (it stays, re-read)."""
    if await try_flush(session, delete=product):
        return True
    await session.refresh(product)
    return False


async def set_image(session: AsyncSession, product: Product, file_id: uuid.UUID | None) -> None:
    product.image_file_id = file_id
    await session.flush()


async def deactivate(session: AsyncSession, product: Product) -> None:
    product.is_active = False
    await session.flush()


async def get_many(session: AsyncSession, product_ids: list[uuid.UUID]) -> list[Product]:
    result = await session.execute(select(Product).where(Product.id.in_(product_ids)))
    return list(result.scalars().all())


async def take_stock(session: AsyncSession, product_id: uuid.UUID, quantity: int) -> bool:
    """Atomically take `quantity` from stock; False if there is not that much (or inactive).

    One conditional UPDATE: concurrent orders can never take the same units, on any database.
    """
    enough = and_(Product.id == product_id, Product.is_active.is_(True), Product.stock >= quantity)
    return bool(await update_where(session, Product, enough, stock=Product.stock - quantity))


async def return_stock(session: AsyncSession, product_id: uuid.UUID, quantity: int) -> None:
    await session.execute(
        update(Product).where(Product.id == product_id).values(stock=Product.stock + quantity)
    )


UPSERTED_COLUMNS = ("name", "description", "price_amount", "currency", "stock", "is_active")
IMPORTED_COLUMNS = ("sku", *UPSERTED_COLUMNS)

# PostgreSQL: a batch is copied (binary COPY) into a temporary table of this session, then
# upserted from it by one statement, in the batch's transaction. TEMP rather than a table of
# the schema: every session has its own (concurrent imports never meet), it is not written to
# the WAL, and it goes with its connection, so a worker that dies leaves nothing behind. ON
# COMMIT DELETE ROWS empties it at every commit and a rollback takes its rows with it, so a
# batch never sees another's rows. No migration: it is created, if missing, by each batch's
# first statement (which also opens the transaction the COPY then runs in).
STAGING_TABLE = "keel_import_staging"
_CREATE_STAGING = text(
    f"CREATE TEMPORARY TABLE IF NOT EXISTS {STAGING_TABLE} (sku text NOT NULL, name text NOT NULL, "
    "description text NOT NULL, price_amount bigint NOT NULL, currency text NOT NULL, "
    "stock integer NOT NULL, is_active boolean NOT NULL) ON COMMIT DELETE ROWS"
)
_DROP_STAGING = text(f"DROP TABLE IF EXISTS pg_temp.{STAGING_TABLE}")
# `xmax = 0` tells an inserted row from an updated one; only the count comes back.
_UPSERT_STAGED = text(
    f"""
    WITH upserted AS (
        INSERT INTO products (id, sku, name, description, price_amount, currency, stock,
                              is_active, created_at, updated_at)
        SELECT gen_random_uuid(), sku, name, description, price_amount, currency, stock,
               is_active, now(), now()
        FROM {STAGING_TABLE}
        ON CONFLICT (sku) DO UPDATE SET
            name = excluded.name, description = excluded.description,
            price_amount = excluded.price_amount, currency = excluded.currency,
            stock = excluded.stock, is_active = excluded.is_active, updated_at = now()
        RETURNING (xmax = 0) AS created
    )
    SELECT count(*) FILTER (WHERE created) FROM upserted
    """  # noqa: S608 - a constant table name
)
# The statements themselves, for bench/features/imports/csv_import.py's baseline (COPY plus
# this same upsert).
CREATE_STAGING_SQL = str(_CREATE_STAGING)
UPSERT_STAGED_SQL = str(_UPSERT_STAGED)


async def upsert_by_sku(session: AsyncSession, rows: Sequence[Sequence[Any]]) -> int:
    """Insert or overwrite products by SKU; returns how many were new.

    Rows are tuples of `IMPORTED_COLUMNS`, with unique SKUs. PostgreSQL: COPY into the
    session's staging table and one upsert from it. SQLite has no way to tell inserts from
    updates in one statement, so it is asked which SKUs exist first, in the same transaction,
    then one executemany upsert.
    """
    if not rows:
        return 0
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(_CREATE_STAGING)  # and the transaction begins
        raw = await (await session.connection()).get_raw_connection()
        driver: Any = raw.driver_connection  # asyncpg's Connection, in that transaction
        await driver.copy_records_to_table(STAGING_TABLE, records=rows, columns=IMPORTED_COLUMNS)
        return int(await session.scalar(_UPSERT_STAGED) or 0)
    existing = await session.scalars(
        select(Product.sku).where(Product.sku.in_([row[0] for row in rows]))
    )
    statement = sqlite.insert(Product)
    now = utcnow()
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=[Product.sku],
            set_={
                **{name: getattr(statement.excluded, name) for name in UPSERTED_COLUMNS},
                "updated_at": now,
            },
        ),
        [
            {
                **dict(zip(IMPORTED_COLUMNS, row, strict=True)),
                "id": uuid.uuid4(),
                "created_at": now,
                "updated_at": now,
            }
            for row in rows
        ],
    )
    return len(rows) - len(set(existing))


async def drop_staging(session: AsyncSession) -> None:
    """Drop this session's staging table (PostgreSQL; it would go with the connection)."""
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(_DROP_STAGING)
