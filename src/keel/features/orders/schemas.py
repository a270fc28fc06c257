from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from keel.core.types import NOT_A_BOOLEAN, Money, RequestModel
from keel.features.orders.models import OrderStatus
from keel.features.payments.cards import Card

MAX_LINES = 100


class OrderLineCreate(RequestModel):
    model_config = ConfigDict(extra="forbid")

    product_id: uuid.UUID
    quantity: Annotated[int, Field(ge=1, le=1000), NOT_A_BOOLEAN]


class OrderCreate(RequestModel):
    model_config = ConfigDict(extra="forbid")

    items: Annotated[list[OrderLineCreate], Field(min_length=1, max_length=MAX_LINES)]


class OrderLine(BaseModel):
    product_id: uuid.UUID
    sku: str
    name: str
    unit_price: Money
    quantity: int


class Payment(BaseModel):
    transaction_id: str
    last4: str
    brand: str
    paid_at: datetime


class PayRequest(RequestModel):
    model_config = ConfigDict(extra="forbid")

    card: Card


class OrderResponse(BaseModel):
    id: uuid.UUID
    user_id: uuid.UUID
    status: OrderStatus
    items: list[OrderLine]
    total: Money
    payment: Payment | None = None
    created_at: datetime
    updated_at: datetime

    @model_validator(mode="before")
    @classmethod
    def _from_model(cls, value: Any) -> Any:
        if not hasattr(value, "total_amount"):
            return value
        return order_fields(value, value.items, value.payment)


def order_fields(order: Any, lines: Iterable[Any], payment: Any | None) -> dict[str, Any]:
    """An order as `OrderResponse` dumps it, from anything carrying the columns by name: the
    ORM order with its relationships, or a page's row (`payment` is then the row itself when
    it has one) and its lines' rows. The page writes the dict as JSON without validating it
    again; the model validates it for a single order."""
    currency = order.currency
    return {
        "id": order.id,
        "user_id": order.user_id,
        "status": order.status,
        "items": [
            {
                "product_id": line.product_id,
                "sku": line.sku,
                "name": line.name,
                "unit_price": {"amount": line.unit_price, "currency": currency},
                "quantity": line.quantity,
            }
            for line in lines
        ],
        "total": {"amount": order.total_amount, "currency": currency},
        "payment": (
            {
                "transaction_id": payment.transaction_id,
                "last4": payment.last4,
                "brand": payment.brand,
                "paid_at": payment.paid_at,
            }
            if payment is not None
            else None
        ),
        "created_at": order.created_at,
        "updated_at": order.updated_at,
    }


class OrderFilters(BaseModel):
    """The list's query parameters (`Annotated[OrderFilters, Query()]`); only admins may name
    another user (the service's rule)."""

    user_id: uuid.UUID | None = None
