from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from keel.core.patching import PatchModel
from keel.core.schemas import nest_columns
from keel.core.types import (
    NOT_A_BOOLEAN,
    MinorUnits,
    Money,
    RequestModel,
    Text,
    invalid_field,
)

Sku = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")]
Name = Annotated[str, Field(min_length=1, max_length=200)]
Description = Annotated[str, Field(max_length=10_000)]
Stock = Annotated[int, Field(ge=0, le=1_000_000_000), NOT_A_BOOLEAN]
Flag = Annotated[bool, Field(strict=True)]
"""A JSON boolean, as the schema says: `0`, `1` or `"yes"` are refused (lax mode took them).
Callers that parse text (the CSV import) validate with `strict=False`."""


class ProductSort(StrEnum):
    NAME = "name"
    NAME_DESC = "-name"
    PRICE = "price"
    PRICE_DESC = "-price"
    CREATED_AT = "created_at"
    CREATED_AT_DESC = "-created_at"


class ProductCreate(RequestModel):
    model_config = ConfigDict(extra="forbid")

    sku: Sku
    name: Name
    description: Description = ""
    price: Money
    stock: Stock = 0
    is_active: Flag = True


class ProductUpdate(PatchModel):
    """PATCH: only the fields sent change; none of them may be null."""

    sku: Sku | None = None
    name: Name | None = None
    description: Description | None = None
    price: Money | None = None
    stock: Stock | None = None
    is_active: Flag | None = None


class ProductImage(RequestModel):
    model_config = ConfigDict(extra="forbid")

    file_id: uuid.UUID | None = Field(description="An uploaded image file; null removes it.")


class ProductResponse(BaseModel):
    id: uuid.UUID
    sku: str
    name: str
    description: str
    price: Money
    stock: int
    is_active: bool
    image_file_id: uuid.UUID | None
    created_at: datetime
    updated_at: datetime

    @model_validator(mode="before")
    @classmethod
    def _from_model(cls, value: Any) -> Any:
        return product_fields(value)


def product_fields(value: Any) -> Any:
    """A product's row (ORM or a page's Core row) as `ProductResponse` dumps it; anything
    else (a dict, a schema) unchanged."""
    return nest_columns(
        value, ProductResponse.model_fields, "price", amount="price_amount", currency="currency"
    )


class ProductFilters(BaseModel):
    """The list's query parameters (`Annotated[ProductFilters, Query()]`), rules included."""

    q: Annotated[Text | None, Field(max_length=200, description="Name or SKU contains")] = None
    min_price: MinorUnits | None = None
    max_price: MinorUnits | None = None
    in_stock: bool | None = None
    sort: ProductSort = ProductSort.NAME

    @model_validator(mode="after")
    def _price_range(self) -> Self:
        low, high = self.min_price, self.max_price
        if low is not None and high is not None and low > high:
            raise invalid_field(
                ProductFilters, "min_price", low, "min_price must not exceed max_price"
            )
        return self
