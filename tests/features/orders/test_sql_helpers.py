"""`try_flush`: a write a constraint refuses is a False, and the transaction goes on."""

from __future__ import annotations

import uuid

from sqlalchemy import and_, func, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from keel.core.sql import try_flush, update_where
from keel.features.catalog.models import Product
from keel.features.orders.models import Order, OrderItem
from keel.features.users.models import User


def _product(sku: str) -> Product:
    return Product(sku=sku, name="Probe", price_amount=100, currency="EUR", stock=1)


async def _count(session: AsyncSession, sku: str) -> int:
    return (await session.scalar(select(func.count()).where(Product.sku == sku))) or 0


async def test_a_taken_unique_value_is_false_and_the_transaction_stays_usable(
    db_connection: AsyncConnection,
) -> None:
    sku = f"SQL-{uuid.uuid4().hex[:8]}"
    async with AsyncSession(bind=db_connection, join_transaction_mode="create_savepoint") as s:
        assert await try_flush(s, add=_product(sku))
        assert not await try_flush(s, add=_product(sku)), "the SKU is taken"
        assert await _count(s, sku) == 1, "the refusal undid only the second insert"
        assert await try_flush(s, add=_product(f"{sku}-2")), "and the session goes on"


async def test_a_row_still_referred_to_is_not_deleted(db_connection: AsyncConnection) -> None:
    sku = f"SQL-{uuid.uuid4().hex[:8]}"
    async with AsyncSession(bind=db_connection, join_transaction_mode="create_savepoint") as s:
        product = _product(sku)
        user = User(email=f"{sku.lower()}@example.com", full_name="P", password_hash="x")
        assert await try_flush(s, add=product)
        assert await try_flush(s, add=user)
        item = OrderItem(
            position=0, product_id=product.id, sku=sku, name="Probe", unit_price=100, quantity=1
        )
        order = Order(
            user_id=user.id, status="pending", currency="EUR", total_amount=100, items=[item]
        )
        assert await try_flush(s, add=order)
        assert not await try_flush(s, delete=product), "an order item refers to it"
        await s.refresh(product)
        assert await _count(s, sku) == 1
        spare = _product(f"{sku}-spare")
        assert await try_flush(s, add=spare)
        assert await try_flush(s, delete=spare)
        assert await _count(s, f"{sku}-spare") == 0


async def test_update_where_counts_only_the_rows_its_conditions_match(
    db_connection: AsyncConnection,
) -> None:
    sku = f"SQL-{uuid.uuid4().hex[:8]}"
    async with AsyncSession(bind=db_connection, join_transaction_mode="create_savepoint") as s:
        product = _product(sku)
        assert await try_flush(s, add=product)
        in_stock = and_(Product.sku == sku, Product.stock >= 1)
        assert await update_where(s, Product, in_stock, stock=Product.stock - 1) == 1
        # The unit is gone: the same conditional update now matches nothing.
        assert await update_where(s, Product, in_stock, stock=Product.stock - 1) == 0
        assert await s.scalar(select(Product.stock).where(Product.sku == sku)) == 0
