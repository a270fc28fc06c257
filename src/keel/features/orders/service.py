"""Order rules: stock reserved in the order's own transaction, released on cancellation.

Only the owner and admins see an order; anyone else gets 404, as for an order that does not
exist. State changes are conditional updates, so two racing cancellations release stock once,
and a payment claims the order before its charge (one charge per order; see `pay_order`).
Events are published after the transaction commits, never for a rolled-back change.
"""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from keel.core.cache import ReadCache
from keel.core.database import after_commit, commit_now, keep_changes
from keel.core.errors import (
    ConflictError,
    FieldError,
    ForbiddenError,
    NotFoundError,
    PaymentDeclinedError,
    ValidationFailedError,
)
from keel.core.events import Event, EventHub
from keel.core.models import utcnow
from keel.core.pagination import PageBody, PageParams, fetch_page
from keel.core.reads import Reads
from keel.core.types import MAX_MINOR_UNITS
from keel.features.auth.service import Caller
from keel.features.catalog import service as catalog
from keel.features.orders import repository
from keel.features.orders.models import Order, OrderItem, OrderStatus
from keel.features.orders.schemas import OrderCreate, OrderResponse, order_fields
from keel.features.payments import service as payments
from keel.features.payments.cards import Card
from keel.features.payments.gateway import PaymentGateway, claim_lease
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
                FieldError(
                    ("body", "items", index, "product_id"),
                    "the same product appears on two lines; add up the quantities",
                    "duplicate",
                )
            )
        seen.add(product_id)
    if duplicates:
        raise ValidationFailedError("Duplicate order lines", errors=duplicates)
    reserved = await catalog.reserve_stock(session, cache, lines)
    total = sum(line.unit_price * line.quantity for line in reserved)
    if total > MAX_MINOR_UNITS:
        # Money is 0..10**12 everywhere (what the schema promises and a gateway charges); the
        # error rolls the stock reservation back with the transaction.
        raise ValidationFailedError.field(
            ("body", "items"),
            f"order total must not exceed {MAX_MINOR_UNITS} minor units",
            "less_than_equal",
            message=f"The order total {total} exceeds the maximum amount of {MAX_MINOR_UNITS}",
        )
    order = Order(
        user_id=customer.id,
        status=OrderStatus.PENDING,
        currency=reserved[0].currency,
        total_amount=total,
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
    if order is None or not actor.may_see(order.user_id):
        raise _not_found()
    return order


async def get_order(session: AsyncSession, actor: User, order_id: uuid.UUID) -> OrderResponse:
    return OrderResponse.model_validate(await _visible_order(session, actor, order_id))


async def list_orders(
    reads: Reads, actor: User | Caller, user_id: uuid.UUID | None, params: PageParams
) -> PageBody:
    """Customers see their own orders; admins see everyone's and may filter by user."""
    if not actor.has_role(Role.ADMIN):
        if user_id is not None and user_id != actor.id:
            raise ForbiddenError("Only admins can list other users' orders")
        user_id = actor.id
    statement, values = repository.for_user(user_id)
    page = await fetch_page(reads, statement, params, values=values)
    return page.render(
        [
            order_fields(
                row,
                repository.lines_of(row),
                row if row.transaction_id is not None else None,
            )
            for row in page.rows
        ]
    )


def _require_pending(order: Order, action: str) -> None:
    if order.status != OrderStatus.PENDING:
        raise ConflictError(
            f"Only pending orders can be {action}; this one is {order.status}",
            details={"status": order.status},
        )


def _payment_in_progress(message: str) -> ConflictError:
    return ConflictError(
        message, details={"status": OrderStatus.PENDING, "reason": "payment_in_progress"}
    )


async def cancel_order(
    session: AsyncSession, cache: ReadCache, events: EventHub, actor: User, order_id: uuid.UUID
) -> OrderResponse:
    """Cancel a pending order. A payment in flight wins: while its claim is live, 409."""
    order = await _visible_order(session, actor, order_id)
    if not await repository.cancel(session, order.id, utcnow()):
        await repository.reload(session, order)
        _require_pending(order, "cancelled")
        raise _payment_in_progress(
            "A payment of this order is in progress; cancel once it has finished"
        )
    await catalog.release_stock(
        session, cache, [(item.product_id, item.quantity) for item in order.items]
    )
    await repository.reload(session, order)
    event = Event(
        type="order.cancelled",
        id=str(order.id),
        user_id=order.user_id,
        data={"status": OrderStatus.CANCELLED},
    )
    after_commit(session, lambda: events.publish(event))
    return OrderResponse.model_validate(order)


async def pay_order(
    session: AsyncSession,
    gateway: PaymentGateway,
    events: EventHub,
    actor: User,
    order_id: uuid.UUID,
    card: Card,
    idempotency_key: str,
) -> OrderResponse:
    """Charge a pending order's total once, whoever pays and with whatever key.

    The order is claimed for this payer (`<user id>:<Idempotency-Key>`, committed) before the
    gateway is called, so a second payer gets 409 without a gateway call, and so does a
    cancel. The claim expires after the gateway's whole retry budget plus a margin, so a
    crashed holder cannot block the order for good.

    The gateway idempotency key comes from the order, not from the payer: `order:<id>:<n>`,
    where n counts the attempts known to have charged nothing (declines). An attempt whose
    outcome is unknown (a gateway timeout, a crash or a database that stopped answering after
    the charge) keeps its n, so whoever pays next, with any key, continues it and the gateway
    answers with the charge already made instead of charging again; whichever request of the
    attempt gets the answer first records it. A charge that succeeds when the order can no
    longer take it (cancelled once the claim expired, or paid by a later attempt) is refunded
    through the gateway and recorded, and the request answers 409.
    """
    order = await _visible_order(session, actor, order_id)
    _require_pending(order, "paid")
    reason = card.decline_reason()
    if reason is not None:  # any network declines it: nothing to claim, no gateway call
        raise PaymentDeclinedError(details={"reason": reason})
    attempt = order.payment_attempt
    bill = payments.Bill(
        order_id=order.id,
        amount=order.total_amount,
        currency=order.currency,
        gateway_key=f"order:{order.id}:{attempt}",
        resumed=order.payment_claim is not None,
    )
    claim = f"{actor.id}:{idempotency_key}"
    now = utcnow()
    if not await repository.claim_payment(session, order, claim, now + claim_lease(gateway), now):
        await repository.reload(session, order)
        _require_pending(order, "paid")
        raise _payment_in_progress(
            "Another payment of this order is in progress; nothing was charged"
        )
    await commit_now(session)  # every other payer and canceller sees the claim from here on
    try:
        charge = await payments.charge(gateway, bill, card)
    except (PaymentDeclinedError, payments.ChargeNotMadeError) as error:
        # Nothing was charged: the order is free for the next attempt at once. (On a
        # ChargeUnknownError the claim stays until it expires or this key retries.)
        await repository.release_payment_claim(session, order.id, claim)
        keep_changes(session, error)
        raise
    if not await repository.mark_paid(session, order.id, attempt):
        await repository.reload(session, order)
        if order.payment is not None and order.payment.transaction_id == charge.transaction_id:
            # Another request of this attempt (ours ran out of time and was continued) got
            # this very charge from the gateway and recorded it first: nothing to give back.
            return OrderResponse.model_validate(order)
        cancelled = order.status == OrderStatus.CANCELLED
        reason = "order_cancelled" if cancelled else "attempt_superseded"
        refund = await payments.refund_late_charge(session, gateway, bill, charge, reason)
        refunded = "was refunded" if refund.refund_id else "will be refunded"
        # The refund record survives the 409.
        raise keep_changes(
            session,
            ConflictError(
                f"The order changed while it was being paid; the charge {refunded}",
                details={"status": order.status, "reason": reason},
            ),
        )
    await payments.record_payment(session, bill, charge, card)
    await repository.reload(session, order)
    event = Event(
        type="order.paid", id=str(order.id), user_id=order.user_id, data={"status": "paid"}
    )
    after_commit(session, lambda: events.publish(event))
    return OrderResponse.model_validate(order)
