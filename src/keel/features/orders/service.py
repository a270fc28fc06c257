"""Order rules: stock reserved in the order's own transaction, released on cancellation.

Only the owner and admins see an order; anyone else gets 404, as for an order that does not
exist. State changes are conditional updates, so two racing cancellations release stock once.
Events are published after the transaction commits, never for a rolled-back change.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from keel.core.cache import ReadCache
from keel.core.database import after_commit
from keel.core.errors import (
    BadGatewayError,
    ConflictError,
    ForbiddenError,
    NotFoundError,
    PaymentDeclinedError,
    ValidationFailedError,
)
from keel.core.events import Event, EventHub
from keel.core.exception_handlers import error_body
from keel.core.idempotency import IdempotencyStore
from keel.core.logging import get_logger
from keel.core.models import utcnow
from keel.core.pagination import Page, PageParams, paginate
from keel.core.payments import (
    ChargeDeclinedError,
    ChargeRequest,
    GatewayUnavailableError,
    PaymentGateway,
)
from keel.features.catalog import service as catalog
from keel.features.orders import repository
from keel.features.orders.models import Order, OrderItem, OrderStatus, Payment
from keel.features.orders.schemas import OrderCreate, OrderResponse
from keel.features.payments.cards import Card
from keel.features.users.models import Role, User

log = get_logger(__name__)


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
        payment=None,  # known to be none yet: no lazy load when the response reads it
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


async def pay_order(
    session: AsyncSession,
    gateway: PaymentGateway,
    idempotency: IdempotencyStore,
    events: EventHub,
    actor: User,
    order_id: uuid.UUID,
    key: str,
    card: Card,
) -> tuple[int, dict[str, Any]]:
    """Charge a pending order's total once per Idempotency-Key; (status, body) to answer.

    The key is claimed (and committed) before the gateway is called. A decline is stored under
    the key like a success, so a retry replays it; a gateway failure (timeout, 5xx) forgets
    the key, so the client may simply try again. The card number and CVC are used for the
    charge only: the payment record keeps the brand and the last four digits.
    """
    reason = card.decline_reason()
    if reason is not None:  # any network declines it: no key to claim, no gateway call
        raise PaymentDeclinedError(details={"reason": reason})
    fingerprint = idempotency.fingerprint(
        str(order_id),
        card.digits,
        card.cvc.get_secret_value(),
        str(card.exp_month),
        str(card.exp_year),
        card.holder,
    )
    replay = await idempotency.claim(session, actor.id, key, fingerprint)
    if replay is not None:
        return replay.status_code, replay.body
    try:
        order = await _visible_order(session, actor, order_id)
        if order.status != OrderStatus.PENDING.value:
            raise ConflictError(
                f"Only pending orders can be paid; this one is {order.status}",
                details={"status": order.status},
            )
        charge = await gateway.charge(
            ChargeRequest(
                amount=order.total_amount,
                currency=order.currency,
                card=card.details(),
                reference=str(order.id),
                idempotency_key=f"{actor.id}:{key}",
            )
        )
    except ChargeDeclinedError as declined:
        error = PaymentDeclinedError(details={"reason": declined.reason})
        await idempotency.complete(session, actor.id, key, error.status_code, error_body(error))
        await session.commit()
        raise error from None
    except GatewayUnavailableError:
        await idempotency.release(session, actor.id, key)
        raise BadGatewayError("The payment gateway did not answer; nothing was charged") from None
    except BaseException:
        await idempotency.release(session, actor.id, key)
        raise
    if not await repository.move_status(session, order.id, OrderStatus.PENDING, OrderStatus.PAID):
        log.error("charged_order_no_longer_pending", order_id=str(order.id))
        raise ConflictError("The order changed while it was being paid")
    session.add(
        Payment(
            order_id=order.id,
            transaction_id=charge.transaction_id,
            amount=order.total_amount,
            currency=order.currency,
            brand=card.brand,
            last4=card.last4,
            paid_at=utcnow(),
        )
    )
    await session.flush()
    await session.refresh(order)
    body = OrderResponse.model_validate(order).model_dump(mode="json")
    await idempotency.complete(session, actor.id, key, 200, body)
    event = Event(
        type="order.paid", id=str(order.id), user_id=order.user_id, data={"status": "paid"}
    )
    after_commit(session, lambda: events.publish(event))
    return 200, body
