"""Orders through the API: placed orders, card bodies and pay calls, so each test builds an
order the way a client does instead of copying the requests."""

from __future__ import annotations

from typing import Any

import httpx

from tests.features.catalog.support import create_product
from tests.support.accounts import Account

ORDERS = "/api/v1/orders"
GOOD = "4242 4242 4242 4242"
INSUFFICIENT = "4000 0000 0000 9995"
DECLINED = "4000 0000 0000 0002"
TIMEOUT = "4000 0000 0000 0119"


def card(number: str = GOOD, **overrides: Any) -> dict[str, Any]:
    """A pay body with a card that passes the checks (a sandbox test number decides the rest)."""
    body: dict[str, Any] = {
        "number": number,
        "exp_month": 12,
        "exp_year": 2099,
        "cvc": "123",
        "holder": "Ada Lovelace",
    }
    body.update(overrides)
    return {"card": body}


async def pay(
    http: httpx.AsyncClient, who: Account, order_id: str, body: dict[str, Any], key: str
) -> httpx.Response:
    headers = {**who.headers, "Idempotency-Key": key}
    return await http.post(f"{ORDERS}/{order_id}/pay", json=body, headers=headers)


async def placed_order(http: httpx.AsyncClient, admin: Account, buyer: Account) -> dict[str, Any]:
    """A pending order of two units of a new 25.00 EUR product."""
    item = await create_product(http, admin, price={"amount": 2500, "currency": "EUR"})
    response = await http.post(
        ORDERS,
        json={"items": [{"product_id": item["id"], "quantity": 2}]},
        headers=buyer.headers,
    )
    assert response.status_code == 201, response.text
    placed: dict[str, Any] = response.json()
    return placed
