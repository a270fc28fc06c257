"""SQL for orders."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Select, or_, update
from sqlalchemy.ext.asyncio import AsyncSession

from keel.core.repository import Rows, newest_first
from keel.features.orders.models import Order, OrderStatus

_rows = Rows(Order)
get = _rows.get
add = _rows.add


async def reload(session: AsyncSession, order: Order) -> None:
    """Read the order's row again: a conditional update below changed it behind the
    session's back (or found that another request had)."""
    await session.refresh(order)


def for_user(user_id: uuid.UUID | None) -> Select[Order]:
    """Newest first; everyone's when `user_id` is None."""
    return newest_first(Order, Order.user_id, user_id)


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
