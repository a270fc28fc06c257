"""Orders: validation, stock reservation, totals, visibility, cancellation and its event."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
import pytest

from keel.main import create_app
from keel.settings import Settings
from tests.features.catalog.support import create_product
from tests.support.accounts import Account, make_admin, signed_up
from tests.support.app import serve
from tests.support.assertions import assert_error_body
from tests.support.databases import POSTGRES_URL, opened
from tests.support.routes import RECEIVED_EVENTS

ORDERS = "/api/v1/orders"
PRODUCTS = "/api/v1/products"


@pytest.fixture
async def alice(client: httpx.AsyncClient) -> Account:
    return await signed_up(client)


async def order(client: httpx.AsyncClient, who: Account, *lines: tuple[str, int]) -> httpx.Response:
    items = [{"product_id": product_id, "quantity": quantity} for product_id, quantity in lines]
    return await client.post(ORDERS, json={"items": items}, headers=who.headers)


async def stock_of(client: httpx.AsyncClient, admin: Account, product_id: str) -> int:
    response = await client.get(f"{PRODUCTS}/{product_id}", headers=admin.headers)
    return int(response.json()["stock"])


async def test_order_reserves_stock_and_totals_on_the_server(
    client: httpx.AsyncClient, admin: Account, alice: Account
) -> None:
    lamp = await create_product(client, admin, price={"amount": 1250, "currency": "EUR"}, stock=5)
    bulb = await create_product(client, admin, price={"amount": 199, "currency": "EUR"}, stock=10)
    response = await order(client, alice, (lamp["id"], 2), (bulb["id"], 3))
    assert response.status_code == 201, response.text
    placed = response.json()
    assert placed["status"] == "pending"
    assert placed["user_id"] == alice.id
    assert placed["total"] == {"amount": 2 * 1250 + 3 * 199, "currency": "EUR"}
    assert placed["payment"] is None
    assert [(i["sku"], i["quantity"]) for i in placed["items"]] == [
        (lamp["sku"], 2),
        (bulb["sku"], 3),
    ]
    assert placed["items"][0]["unit_price"] == {"amount": 1250, "currency": "EUR"}
    assert await stock_of(client, admin, lamp["id"]) == 3
    assert await stock_of(client, admin, bulb["id"]) == 7


async def test_not_enough_stock_is_409_and_takes_nothing(
    client: httpx.AsyncClient, admin: Account, alice: Account
) -> None:
    plenty = await create_product(client, admin, stock=10)
    scarce = await create_product(client, admin, stock=1)
    response = await order(client, alice, (plenty["id"], 2), (scarce["id"], 2))
    error = assert_error_body(response, 409, "CONFLICT")
    assert error["details"] == {"product_id": scarce["id"], "requested": 2}
    assert await stock_of(client, admin, plenty["id"]) == 10  # all or nothing
    assert await stock_of(client, admin, scarce["id"]) == 1


async def test_a_total_beyond_the_money_range_is_422_and_reserves_nothing(
    client: httpx.AsyncClient, admin: Account, alice: Account
) -> None:
    """Two of the dearest product allowed used to overflow the response's Money (a 500)."""
    dear = await create_product(client, admin, price={"amount": 10**12, "currency": "EUR"}, stock=5)
    response = await order(client, alice, (dear["id"], 2))
    error = assert_error_body(response, 422, "VALIDATION_ERROR")
    assert "exceeds the maximum amount" in error["message"]
    assert [e["loc"] for e in error["details"]["errors"]] == [["body", "items"]]
    assert await stock_of(client, admin, dear["id"]) == 5
    assert (await order(client, alice, (dear["id"], 1))).status_code == 201  # the limit itself


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({"items": []}, ["body", "items"]),
        (
            {"items": [{"product_id": "not-a-uuid", "quantity": 1}]},
            ["body", "items", 0, "product_id"],
        ),
        (
            {"items": [{"product_id": str(uuid.uuid4()), "quantity": 0}]},
            ["body", "items", 0, "quantity"],
        ),
        (
            {"items": [{"product_id": str(uuid.uuid4()), "quantity": 1001}]},
            ["body", "items", 0, "quantity"],
        ),
        (
            {"items": [{"product_id": str(uuid.uuid4()), "quantity": 1}]},
            ["body", "items", 0, "product_id"],
        ),
        ({}, ["body", "items"]),
    ],
)
async def test_invalid_orders_are_422(
    client: httpx.AsyncClient, alice: Account, body: dict[str, Any], loc: list[Any]
) -> None:
    response = await client.post(ORDERS, json=body, headers=alice.headers)
    error = assert_error_body(response, 422, "VALIDATION_ERROR")
    assert error["details"]["errors"][0]["loc"] == loc  # type: ignore[index]


async def test_duplicate_lines_inactive_products_and_mixed_currencies_are_422(
    client: httpx.AsyncClient, admin: Account, alice: Account
) -> None:
    euro = await create_product(client, admin)
    dollar = await create_product(client, admin, price={"amount": 100, "currency": "USD"})
    hidden = await create_product(client, admin, is_active=False)
    duplicate = await order(client, alice, (euro["id"], 1), (euro["id"], 2))
    inactive = await order(client, alice, (hidden["id"], 1))
    mixed = await order(client, alice, (euro["id"], 1), (dollar["id"], 1))
    for response in (duplicate, inactive, mixed):
        assert_error_body(response, 422, "VALIDATION_ERROR")
    assert duplicate.json()["error"]["details"]["errors"][0]["loc"] == [
        "body",
        "items",
        1,
        "product_id",
    ]
    assert await stock_of(client, admin, euro["id"]) == 5


async def test_a_malformed_user_filter_is_422(client: httpx.AsyncClient, alice: Account) -> None:
    response = await client.get(ORDERS, params={"user_id": "nobody"}, headers=alice.headers)
    error = assert_error_body(response, 422, "VALIDATION_ERROR")
    assert [e["loc"] for e in error["details"]["errors"]] == [["query", "user_id"]]  # type: ignore[index]


async def test_orders_need_a_login(client: httpx.AsyncClient) -> None:
    assert_error_body(await client.get(ORDERS), 401, "UNAUTHORIZED")
    assert_error_body(await client.post(ORDERS, json={"items": []}), 401, "UNAUTHORIZED")


async def test_only_the_owner_or_an_admin_sees_an_order(
    client: httpx.AsyncClient, admin: Account, alice: Account
) -> None:
    bob = await signed_up(client)
    product = await create_product(client, admin)
    placed = (await order(client, alice, (product["id"], 1))).json()
    url = f"{ORDERS}/{placed['id']}"
    assert (await client.get(url, headers=alice.headers)).status_code == 200
    assert (await client.get(url, headers=admin.headers)).status_code == 200
    assert_error_body(await client.get(url, headers=bob.headers), 404, "NOT_FOUND")
    assert_error_body(await client.post(f"{url}/cancel", headers=bob.headers), 404, "NOT_FOUND")
    assert_error_body(
        await client.get(f"{ORDERS}/{uuid.uuid4()}", headers=alice.headers), 404, "NOT_FOUND"
    )
    bobs = await client.get(ORDERS, headers=bob.headers)
    assert bobs.json()["items"] == []
    assert_error_body(
        await client.get(ORDERS, params={"user_id": alice.id}, headers=bob.headers),
        403,
        "FORBIDDEN",
    )
    by_admin = await client.get(ORDERS, params={"user_id": alice.id}, headers=admin.headers)
    assert [o["id"] for o in by_admin.json()["items"]] == [placed["id"]]


async def test_cancel_releases_stock_once_and_publishes_an_event(
    client: httpx.AsyncClient, admin: Account, alice: Account
) -> None:
    product = await create_product(client, admin, stock=4)
    placed = (await order(client, alice, (product["id"], 3))).json()
    key = uuid.uuid4().hex
    await client.post(f"/_test/events/{key}")
    cancelled = await client.post(f"{ORDERS}/{placed['id']}/cancel", headers=alice.headers)
    again = await client.post(f"{ORDERS}/{placed['id']}/cancel", headers=alice.headers)
    assert cancelled.status_code == 200
    assert cancelled.json()["status"] == "cancelled"
    error = assert_error_body(again, 409, "CONFLICT")
    assert error["details"] == {"status": "cancelled"}
    assert await stock_of(client, admin, product["id"]) == 4
    received = RECEIVED_EVENTS[key]
    assert [(e.type, e.id, str(e.user_id)) for e in received] == [
        ("order.cancelled", placed["id"], alice.id)
    ], "one event, and none for the refused second cancellation"


async def test_product_with_orders_is_deactivated_not_deleted(
    client: httpx.AsyncClient, admin: Account, alice: Account
) -> None:
    product = await create_product(client, admin)
    await order(client, alice, (product["id"], 1))
    response = await client.delete(f"{PRODUCTS}/{product['id']}", headers=admin.headers)
    assert response.status_code == 204
    kept = await client.get(f"{PRODUCTS}/{product['id']}", headers=admin.headers)
    assert kept.status_code == 200
    assert kept.json()["is_active"] is False
    assert_error_body(await client.get(f"{PRODUCTS}/{product['id']}"), 404, "NOT_FOUND")


async def test_user_with_orders_cannot_be_deleted(
    client: httpx.AsyncClient, admin: Account, alice: Account
) -> None:
    product = await create_product(client, admin)
    await order(client, alice, (product["id"], 1))
    response = await client.delete(f"/api/v1/users/{alice.id}", headers=admin.headers)
    assert_error_body(response, 409, "CONFLICT")


@pytest.mark.skipif(not POSTGRES_URL, reason="needs KEEL_TEST_DATABASE_URL (PostgreSQL)")
async def test_no_oversell_under_concurrency(live_settings: Settings) -> None:
    """50 parallel orders for a product with 10 in stock sell exactly 10, on the real pool."""
    settings = live_settings.model_copy(update={"db_pool_size": 20})
    async with serve(create_app(settings)) as http:
        admin = await signed_up(http)
        async with opened(settings.database_url) as database, database.engine.begin() as conn:
            await make_admin(conn, admin)
        product = await create_product(http, admin, stock=10)
        buyers = [await signed_up(http) for _ in range(5)]
        responses = await asyncio.gather(
            *(order(http, buyers[i % 5], (product["id"], 1)) for i in range(50))
        )
        remaining = await stock_of(http, admin, product["id"])
    statuses = [r.status_code for r in responses]
    assert statuses.count(201) == 10
    assert statuses.count(409) == 40
    assert remaining == 0
