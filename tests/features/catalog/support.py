"""Products through the API: a valid body with a unique SKU, and creating one as an admin."""

from __future__ import annotations

import uuid
from typing import Any

import httpx

from tests.support.accounts import Account

PRODUCTS = "/api/v1/products"


def product(**overrides: Any) -> dict[str, Any]:
    """A valid product body with a unique SKU."""
    body: dict[str, Any] = {
        "sku": f"SKU-{uuid.uuid4().hex[:10]}",
        "name": "Widget",
        "description": "A useful widget",
        "price": {"amount": 1999, "currency": "EUR"},
        "stock": 5,
    }
    body.update(overrides)
    return body


async def create_product(
    client: httpx.AsyncClient, admin: Account, **overrides: Any
) -> dict[str, Any]:
    response = await client.post(PRODUCTS, json=product(**overrides), headers=admin.headers)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created
