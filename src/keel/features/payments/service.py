"""Charging cards and recording what charging left behind.

The gateway's outcomes become the SPEC's errors here: a decline is a 402, a gateway that did
not answer is a 502. The two 502s differ for whoever holds the order: `ChargeNotMadeError`
means nothing was charged (the gateway refused the request itself), `ChargeUnknownError` that
a charge may have gone through with its answer lost, so the order must stay claimed until a
retry with the same gateway key (which the gateway deduplicates) or until the claim expires.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import TypedDict

from sqlalchemy.ext.asyncio import AsyncSession

from keel.core.errors import BadGatewayError, PaymentDeclinedError
from keel.core.logging import get_logger
from keel.core.models import utcnow
from keel.features.payments import repository
from keel.features.payments.cards import Card
from keel.features.payments.gateway import (
    Charge,
    ChargeDeclinedError,
    ChargeRequest,
    GatewayRejectedError,
    GatewayUnavailableError,
    PaymentGateway,
    RefundRequest,
)
from keel.features.payments.models import Payment, Refund

log = get_logger(__name__)


class ChargeNotMadeError(BadGatewayError):
    default_message = "The payment gateway refused the request; nothing was charged"


class ChargeUnknownError(BadGatewayError):
    default_message = (
        "The payment gateway did not answer; retry with the same Idempotency-Key, "
        "which cannot charge twice"
    )


@dataclass(frozen=True, slots=True)
class Bill:
    """What to charge for: an order's id, total and the gateway idempotency key.

    `resumed`: an earlier request used this gateway key and its outcome is unknown.
    """

    order_id: uuid.UUID
    amount: int
    currency: str
    gateway_key: str
    resumed: bool = False


async def charge(gateway: PaymentGateway, bill: Bill, card: Card) -> Charge:
    """Charge the bill's card; a gateway's refusal of a resumed key proves nothing.

    A gateway that refuses a request (a 4xx) charged nothing for it, but when the key was
    used before with an unknown outcome, the refusal may be about that earlier request (a
    real gateway refuses a key reused with other parameters, or still in flight), whose
    charge may stand: the outcome stays unknown, so the order stays claimed.
    """
    try:
        return await gateway.charge(
            ChargeRequest(
                amount=bill.amount,
                currency=bill.currency,
                card=card.details(),
                reference=str(bill.order_id),
                idempotency_key=bill.gateway_key,
            )
        )
    except ChargeDeclinedError as declined:
        raise PaymentDeclinedError(details={"reason": declined.reason}) from None
    except GatewayRejectedError:
        if bill.resumed:
            raise ChargeUnknownError from None
        raise ChargeNotMadeError from None
    except GatewayUnavailableError:
        raise ChargeUnknownError from None


class _ChargeColumns(TypedDict):
    order_id: uuid.UUID
    transaction_id: str
    amount: int
    currency: str


def _charge_columns(bill: Bill, charge: Charge) -> _ChargeColumns:
    """What a payment and a refund both record: the order and the charge they are about."""
    return _ChargeColumns(
        order_id=bill.order_id,
        transaction_id=charge.transaction_id,
        amount=bill.amount,
        currency=bill.currency,
    )


async def record_payment(session: AsyncSession, bill: Bill, charge: Charge, card: Card) -> Payment:
    payment = Payment(
        **_charge_columns(bill, charge), brand=card.brand, last4=card.last4, paid_at=utcnow()
    )
    await repository.add(session, payment)
    return payment


async def refund_late_charge(
    session: AsyncSession, gateway: PaymentGateway, bill: Bill, charge: Charge, reason: str
) -> Refund:
    """Give back a charge its order could not take, and record it (refunded or not).

    A failed refund is recorded with no refund id and logged as an error: the charge stands
    at the gateway and an operator has to settle it.
    """
    refund = Refund(
        **_charge_columns(bill, charge), reason=reason, refund_id=None, created_at=utcnow()
    )
    try:
        receipt = await gateway.refund(
            RefundRequest(
                transaction_id=charge.transaction_id,
                amount=bill.amount,
                currency=bill.currency,
                idempotency_key=f"refund:{bill.gateway_key}",
            )
        )
    except GatewayUnavailableError:
        log.error("late_charge_refund_failed", order_id=str(bill.order_id), reason=reason)
    else:
        refund.refund_id = receipt.refund_id
        log.warning("late_charge_refunded", order_id=str(bill.order_id), reason=reason)
    await repository.add(session, refund)
    return refund
