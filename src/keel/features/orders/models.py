from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from keel.core.models import Base, Timestamps, UUIDPrimaryKey, str_enum

# Imported at run time, not for typing only: the `payment` relationship needs it mapped.
from keel.features.payments.models import Payment


class OrderStatus(StrEnum):
    PENDING = "pending"
    PAID = "paid"
    CANCELLED = "cancelled"


class Order(UUIDPrimaryKey, Timestamps, Base):
    __tablename__ = "orders"
    __table_args__ = (
        CheckConstraint("status IN ('pending', 'paid', 'cancelled')", name="known_status"),
        CheckConstraint("total_amount >= 0", name="total_not_negative"),
        # Pages newest first (read backwards): one customer's, and everyone's for admins.
        Index("ix_orders_user_id_created_at", "user_id", "created_at", "id"),
        Index("ix_orders_created_at", "created_at", "id"),
    )

    # RESTRICT: orders are business records; an account with orders is deactivated, not deleted.
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"))
    status: Mapped[OrderStatus] = mapped_column(
        str_enum(OrderStatus, 20), default=OrderStatus.PENDING
    )
    currency: Mapped[str] = mapped_column(String(3))
    total_amount: Mapped[int] = mapped_column(BigInteger)
    # Who is paying right now (`<user id>:<Idempotency-Key>`), until the lease runs out
    # (see features/orders/service.py, pay_order).
    payment_claim: Mapped[str | None] = mapped_column(String(300))
    payment_claimed_until: Mapped[datetime | None]
    # Counts the attempts known to have charged nothing; part of the gateway idempotency key,
    # so every retry of an attempt whose outcome is unknown is deduplicated by the gateway.
    payment_attempt: Mapped[int] = mapped_column(default=0, server_default="0")
    items: Mapped[list[OrderItem]] = relationship(
        cascade="all, delete-orphan", lazy="selectin", order_by="OrderItem.position"
    )
    payment: Mapped[Payment | None] = relationship(lazy="selectin")


class OrderItem(UUIDPrimaryKey, Base):
    """A line, with the product's SKU, name and price copied as they were when ordered."""

    __tablename__ = "order_items"
    __table_args__ = (CheckConstraint("quantity > 0", name="quantity_positive"),)

    order_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("orders.id", ondelete="CASCADE"), index=True
    )
    product_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("products.id", ondelete="RESTRICT"), index=True
    )
    position: Mapped[int]
    sku: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    unit_price: Mapped[int] = mapped_column(BigInteger)
    quantity: Mapped[int]
