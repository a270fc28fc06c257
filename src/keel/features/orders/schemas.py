from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from keel.core.types import NOT_A_BOOLEAN, RequestModel
from keel.features.catalog.schemas import Money
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
        currency = value.currency
        return {
            "id": value.id,
            "user_id": value.user_id,
            "status": value.status,
            "items": [
                {
                    "product_id": item.product_id,
                    "sku": item.sku,
                    "name": item.name,
                    "unit_price": {"amount": item.unit_price, "currency": currency},
                    "quantity": item.quantity,
                }
                for item in value.items
            ],
            "total": {"amount": value.total_amount, "currency": currency},
            "payment": (
                {
                    "transaction_id": value.payment.transaction_id,
                    "last4": value.payment.last4,
                    "brand": value.payment.brand,
                    "paid_at": value.payment.paid_at,
                }
                if value.payment is not None
                else None
            ),
            "created_at": value.created_at,
            "updated_at": value.updated_at,
        }


class OrderFilters(BaseModel):
    """The list's query parameters (`Annotated[OrderFilters, Query()]`); only admins may name
    another user (the service's rule)."""

    user_id: uuid.UUID | None = None
