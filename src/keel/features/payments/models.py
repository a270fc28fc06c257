"""What charging leaves behind: payments of orders, and refunds of charges that came too late.

Never the card number or the CVC: the brand, the last four digits and the gateway's ids.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from keel.core.models import Base, UUIDPrimaryKey


class ChargeRecord:
    """What every record of a charge keeps: the gateway's charge id and what it was for."""

    transaction_id: Mapped[str] = mapped_column(String(100))
    amount: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))


class Payment(UUIDPrimaryKey, ChargeRecord, Base):
    """The successful charge that paid an order (at most one per order)."""

    __tablename__ = "payments"

    order_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("orders.id", ondelete="RESTRICT"), unique=True
    )
    brand: Mapped[str] = mapped_column(String(20))
    last4: Mapped[str] = mapped_column(String(4))
    paid_at: Mapped[datetime]


class Refund(UUIDPrimaryKey, ChargeRecord, Base):
    """A charge that succeeded after its order could no longer take it, given back.

    `refund_id` is the gateway's id; None when the refund itself failed, which leaves the row
    as the record an operator needs to settle the charge by hand.
    """

    __tablename__ = "refunds"

    order_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("orders.id", ondelete="RESTRICT"), index=True
    )
    reason: Mapped[str] = mapped_column(String(50))
    refund_id: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[datetime]
