"""SQL for orders."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import JSON, Row, Select, bindparam, or_, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

from keel.core.repository import Rows, newest_first
from keel.features.orders.models import Order, OrderStatus
from keel.features.payments.models import Payment

_rows = Rows(Order)
get = _rows.get
add = _rows.add


async def reload(session: AsyncSession, order: Order) -> None:
    """Read the order's row again: a conditional update below changed it behind the
    session's back (or found that another request had)."""
    await session.refresh(order)


class _LinesJson(FunctionElement[Any]):
    """An order's lines as one JSON array of `[product_id, sku, name, unit_price, quantity]`
    arrays, in the lines' order: a correlated subquery of the page's own statement, so a page
    of orders and their lines is one round trip (timed against a second `IN` query of the
    page's ids in bench/features/orders/large_data.py: faster, the saved round trip being most
    of a page's database time)."""

    type = JSON()
    inherit_cache = True
    name = "order_lines_json"


@compiles(_LinesJson, "postgresql")
def _lines_json_postgresql(element: _LinesJson, compiler: SQLCompiler, **kw: Any) -> str:
    return (
        "(SELECT json_agg(json_build_array(i.product_id, i.sku, i.name, i.unit_price, "
        "i.quantity) ORDER BY i.position) FROM order_items AS i WHERE i.order_id = orders.id)"
    )


@compiles(_LinesJson, "sqlite")
def _lines_json_sqlite(element: _LinesJson, compiler: SQLCompiler, **kw: Any) -> str:
    # SQLite aggregates in the order its input arrives: an ordered subquery.
    return (
        "(SELECT json_group_array(json_array(product_id, sku, name, unit_price, quantity)) "
        "FROM (SELECT i.product_id, i.sku, i.name, i.unit_price, i.quantity "
        "FROM order_items AS i WHERE i.order_id = orders.id ORDER BY i.position))"
    )


class Line(NamedTuple):
    product_id: uuid.UUID
    sku: str
    name: str
    unit_price: int
    quantity: int


def lines_of(row: Row[Any]) -> list[Line]:
    """A page row's lines (`PAGE_COLUMNS`' JSON) as rows of their own."""
    return [
        Line(uuid.UUID(product_id), sku, name, unit_price, quantity)
        for product_id, sku, name, unit_price, quantity in row.lines
    ]


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
    _LinesJson().label("lines"),
)


def _page(owner: Any) -> Select[Any]:
    return newest_first(Order, Order.user_id, owner, *PAGE_COLUMNS).outerjoin(
        Payment, Payment.order_id == Order.id
    )


_EVERYONES_PAGE = _page(None)
_OWNERS_PAGE = _page(bindparam("owner_id"))


def for_user(user_id: uuid.UUID | None) -> tuple[Select[Any], dict[str, Any]]:
    """A page's columns, with the payment (at most one per order) joined and the lines
    aggregated, newest first; everyone's when `user_id` is None. The statement is built
    once and the owner bound per request (`fetch_page` then reuses its paged form)."""
    if user_id is None:
        return _EVERYONES_PAGE, {}
    return _OWNERS_PAGE, {"owner_id": user_id}


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
