"""SQL for products."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import Select, UnaryExpression, func, literal_column, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from keel.core.sql import LIKE_ESCAPE, contains_pattern
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


def filtered(filters: ProductFilters) -> Select[Product]:
    # The id breaks ties, so pages are stable when names or prices repeat.
    statement = select(Product).order_by(ORDERING[filters.sort], Product.id)
    if not filters.include_inactive:
        statement = statement.where(Product.is_active.is_(True))
    if filters.q:
        pattern = contains_pattern(filters.q)
        statement = statement.where(
            or_(
                func.lower(Product.name).like(pattern, escape=LIKE_ESCAPE),
                func.lower(Product.sku).like(pattern, escape=LIKE_ESCAPE),
            )
        )
    if filters.min_price is not None:
        statement = statement.where(Product.price_amount >= filters.min_price)
    if filters.max_price is not None:
        statement = statement.where(Product.price_amount <= filters.max_price)
    if filters.in_stock is True:
        statement = statement.where(Product.stock > 0)
    elif filters.in_stock is False:
        statement = statement.where(Product.stock == 0)
    return statement


async def get(session: AsyncSession, product_id: uuid.UUID) -> Product | None:
    return await session.get(Product, product_id)


async def add(session: AsyncSession, product: Product) -> Product:
    session.add(product)
    await session.flush()
    return product


async def delete(session: AsyncSession, product: Product) -> None:
    await session.delete(product)
    await session.flush()


async def get_many(session: AsyncSession, product_ids: list[uuid.UUID]) -> list[Product]:
    result = await session.execute(select(Product).where(Product.id.in_(product_ids)))
    return list(result.scalars().all())


async def take_stock(session: AsyncSession, product_id: uuid.UUID, quantity: int) -> bool:
    """Atomically take `quantity` from stock; False if there is not that much (or inactive).

    One conditional UPDATE: concurrent orders can never take the same units, on any database.
    """
    result = await session.execute(
        update(Product)
        .where(Product.id == product_id, Product.is_active.is_(True), Product.stock >= quantity)
        .values(stock=Product.stock - quantity)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def return_stock(session: AsyncSession, product_id: uuid.UUID, quantity: int) -> None:
    await session.execute(
        update(Product).where(Product.id == product_id).values(stock=Product.stock + quantity)
    )


UPSERTED_COLUMNS = ("name", "description", "price_amount", "currency", "stock", "is_active")


async def upsert_by_sku(session: AsyncSession, rows: list[dict[str, Any]]) -> int:
    """Insert or overwrite products by SKU (rows have unique SKUs); returns how many were new.

    PostgreSQL says per row whether it inserted (`xmax = 0` in RETURNING); SQLite is asked
    which SKUs exist first, in the same transaction.
    """
    if not rows:
        return 0
    postgres = session.get_bind().dialect.name == "postgresql"
    existing = 0 if postgres else len(await _existing_skus(session, [r["sku"] for r in rows]))
    statement = (postgresql if postgres else sqlite).insert(Product)
    excluded = statement.excluded
    upsert = statement.on_conflict_do_update(
        index_elements=[Product.sku],
        set_={
            **{name: getattr(excluded, name) for name in UPSERTED_COLUMNS},
            "updated_at": func.now(),
        },
    )
    if not postgres:
        await session.execute(upsert, rows)
        return len(rows) - existing
    inserted = await session.scalars(upsert.returning(literal_column("xmax = 0")), rows)
    return sum(1 for new in inserted if new)


async def _existing_skus(session: AsyncSession, skus: list[str]) -> set[str]:
    result = await session.scalars(select(Product.sku).where(Product.sku.in_(skus)))
    return set(result)
