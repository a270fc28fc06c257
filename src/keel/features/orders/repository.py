"""SQL for orders."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Row, Select, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from keel.core.repository import Rows, newest_first
from keel.features.orders.models import Order, OrderItem, OrderStatus
from keel.features.payments.models import Payment

_rows = Rows(Order)
get = _rows.get
add = _rows.add


async def reload(session: AsyncSession, order: Order) -> None:
    """Read the order's row again: a conditional update below changed it behind the
    session's back (or found that another request had)."""
    await session.refresh(order)


PAGE_COLUMNS: tuple[Any, ...] = (
    Order.id,
    Order.user_id,
    Order.status,
    Order.currency,
    Order.total_amount,
    Order.created_at,
    Order.updated_at,
    Payment.transaction_id,
    Payment.last4,
    Payment.brand,
    Payment.paid_at,
)


def for_user(user_id: uuid.UUID | None) -> Select[Any]:
    """A page's columns, with the payment (at most one per order) joined, newest first;
    everyone's when `user_id` is None."""
    return newest_first(Order, Order.user_id, user_id, *PAGE_COLUMNS).outerjoin(
        Payment, Payment.order_id == Order.id
    )


_LINE_COLUMNS: tuple[Any, ...] = (
    OrderItem.order_id,
    OrderItem.product_id,
    OrderItem.sku,
    OrderItem.name,
    OrderItem.unit_price,
    OrderItem.quantity,
)


async def lines_of(session: AsyncSession, order_ids: Sequence[uuid.UUID]) -> Sequence[Row[Any]]:
    """Every line of these orders in one query, each order's lines in their order."""
    if not order_ids:
        return []
    result = await session.execute(
        select(*_LINE_COLUMNS)
        .where(OrderItem.order_id.in_(order_ids))
        .order_by(OrderItem.order_id, OrderItem.position)
    )
    return result.all()


def _claim_free(now: datetime) -> Any:
    return or_(Order.payment_claimed_until.is_(None), Order.payment_claimed_until <= now)


async def claim_payment(
    session: AsyncSession, order: Order, claim: str, until: datetime, now: datetime
) -> bool:
    """Claim a pending order for one payer until `until`; False if another live claim holds
    it, or if the claim or the attempt changed since `order` was read.

    The same claim may be renewed (a retry of the same request). Compare-and-set on the claim
    and attempt as read, so the caller knows whether it continues an attempt whose outcome an
    earlier holder left unknown (see `pay_order`). One conditional UPDATE: on PostgreSQL a
    concurrent claimer waits for the row lock and then re-checks the condition against the
    committed row; SQLite serialises writers.
    """
    seen = (
        Order.payment_claim.is_(None)
        if order.payment_claim is None
        else Order.payment_claim == order.payment_claim
    )
    return await _update(
        session,
        order.id,
        Order.status == OrderStatus.PENDING,
        Order.payment_attempt == order.payment_attempt,
        seen,
        or_(_claim_free(now), Order.payment_claim == claim),
        payment_claim=claim,
        payment_claimed_until=until,
    )


async def release_payment_claim(session: AsyncSession, order_id: uuid.UUID, claim: str) -> None:
    """Free the order after an attempt that charged nothing; the next attempt gets a new
    gateway key (the gateway would replay this attempt's answer for the old one)."""
    await _update(
        session,
        order_id,
        Order.payment_claim == claim,
        payment_claim=None,
        payment_claimed_until=None,
        payment_attempt=Order.payment_attempt + 1,
    )


async def mark_paid(session: AsyncSession, order_id: uuid.UUID, attempt: int) -> bool:
    """Pending -> paid with a charge of `attempt`; False if the order was cancelled or moved
    on to a later attempt meanwhile.

    Fenced by the attempt, not by the claim: every request of one attempt charges under one
    gateway key and so gets the same charge, whichever of them holds the claim by then.
    """
    return await _update(
        session,
        order_id,
        Order.status == OrderStatus.PENDING,
        Order.payment_attempt == attempt,
        status=OrderStatus.PAID,
        payment_claim=None,
        payment_claimed_until=None,
    )


async def cancel(session: AsyncSession, order_id: uuid.UUID, now: datetime) -> bool:
    """Pending -> cancelled, unless a live payment claim holds the order."""
    return await _update(
        session,
        order_id,
        Order.status == OrderStatus.PENDING,
        _claim_free(now),
        status=OrderStatus.CANCELLED,
    )


async def _update(
    session: AsyncSession, order_id: uuid.UUID, *conditions: Any, **values: Any
) -> bool:
    result = await session.execute(
        update(Order)
        .where(Order.id == order_id, *conditions)
        .values(**values)
        .execution_options(synchronize_session="fetch")
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]
