"""Order rules: stock reserved in the order's own transaction, released on cancellation.

Only the owner and admins see an order; anyone else gets 404, as for an order that does not
exist. State changes are conditional updates, so two racing cancellations release stock once.
Events are published after the transaction commits, never for a rolled-back change.
"""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from keel.core.cache import ReadCache
from keel.core.database import after_commit
from keel.core.errors import ConflictError, ForbiddenError, NotFoundError, ValidationFailedError
from keel.core.events import Event, EventHub
from keel.core.pagination import Page, PageParams, paginate
from keel.features.catalog import service as catalog
from keel.features.orders import repository
from keel.features.orders.models import Order, OrderItem, OrderStatus
from keel.features.orders.schemas import OrderCreate, OrderResponse
from keel.features.users.models import Role, User


def _not_found() -> NotFoundError:
    return NotFoundError("Order not found")


async def create_order(
    session: AsyncSession, cache: ReadCache, customer: User, data: OrderCreate
) -> OrderResponse:
    lines = [(line.product_id, line.quantity) for line in data.items]
    seen: set[uuid.UUID] = set()
    duplicates = []
    for index, (product_id, _) in enumerate(lines):
        if product_id in seen:
            duplicates.append(
                {
                    "loc": ["body", "items", index, "product_id"],
                    "msg": "the same product appears on two lines; add up the quantities",
                    "type": "duplicate",
                }
            )
        seen.add(product_id)
    if duplicates:
        raise ValidationFailedError("Duplicate order lines", errors=duplicates)
    reserved = await catalog.reserve_stock(session, cache, lines)
    order = Order(
        user_id=customer.id,
        status=OrderStatus.PENDING.value,
        currency=reserved[0].currency,
        total_amount=sum(line.unit_price * line.quantity for line in reserved),
        items=[
            OrderItem(
                position=position,
                product_id=line.product_id,
                sku=line.sku,
                name=line.name,
                unit_price=line.unit_price,
                quantity=line.quantity,
            )
            for position, line in enumerate(reserved)
        ],
    )
    await repository.add(session, order)
    return OrderResponse.model_validate(order)


async def _visible_order(session: AsyncSession, actor: User, order_id: uuid.UUID) -> Order:
    order = await repository.get(session, order_id)
    if order is None or (order.user_id != actor.id and not actor.has_role(Role.ADMIN)):
        raise _not_found()
    return order


async def get_order(session: AsyncSession, actor: User, order_id: uuid.UUID) -> OrderResponse:
    return OrderResponse.model_validate(await _visible_order(session, actor, order_id))


async def list_orders(
    session: AsyncSession, actor: User, user_id: uuid.UUID | None, params: PageParams
) -> Page[OrderResponse]:
    """Customers see their own orders; admins see everyone's and may filter by user."""
    if not actor.has_role(Role.ADMIN):
        if user_id is not None and user_id != actor.id:
            raise ForbiddenError("Only admins can list other users' orders")
        user_id = actor.id
    return await paginate(
        session, repository.for_user(user_id), params, OrderResponse.model_validate
    )


async def cancel_order(
    session: AsyncSession, cache: ReadCache, events: EventHub, actor: User, order_id: uuid.UUID
) -> OrderResponse:
    order = await _visible_order(session, actor, order_id)
    if not await repository.move_status(
        session, order.id, OrderStatus.PENDING, OrderStatus.CANCELLED
    ):
        await session.refresh(order)
        raise ConflictError(
            f"Only pending orders can be cancelled; this one is {order.status}",
            details={"status": order.status},
        )
    await catalog.release_stock(
        session, cache, [(item.product_id, item.quantity) for item in order.items]
    )
    await session.refresh(order)
    event = Event(
        type="order.cancelled",
        id=str(order.id),
        user_id=order.user_id,
        data={"status": OrderStatus.CANCELLED.value},
    )
    after_commit(session, lambda: events.publish(event))
    return OrderResponse.model_validate(order)
