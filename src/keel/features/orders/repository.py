"""SQL for orders."""

from __future__ import annotations

import uuid

from sqlalchemy import Select, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from keel.features.orders.models import Order, OrderStatus


async def add(session: AsyncSession, order: Order) -> Order:
    session.add(order)
    await session.flush()
    return order


async def get(session: AsyncSession, order_id: uuid.UUID) -> Order | None:
    return await session.get(Order, order_id)


def for_user(user_id: uuid.UUID | None) -> Select[Order]:
    statement = select(Order).order_by(Order.created_at.desc(), Order.id)
    if user_id is not None:
        statement = statement.where(Order.user_id == user_id)
    return statement


async def move_status(
    session: AsyncSession, order_id: uuid.UUID, expected: OrderStatus, new: OrderStatus
) -> bool:
    """Change the status only if it still is `expected`; False if another request won."""
    result = await session.execute(
        update(Order)
        .where(Order.id == order_id, Order.status == expected.value)
        .values(status=new.value)
        .execution_options(synchronize_session="fetch")
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]
