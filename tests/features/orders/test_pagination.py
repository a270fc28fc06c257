"""Pages built from rows: each item is what the item's own read answers, the count is bounded
(an estimate beyond `KEEL_PAGINATION_EXACT_TOTAL_MAX`, said so by a header), and the list
statements use their indexes."""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from keel.core.errors import ConfigError
from keel.core.pagination import ESTIMATED_HEADER, PageBody
from keel.features.catalog.repository import filtered as product_statement
from keel.features.catalog.schemas import ProductFilters, ProductSort
from keel.features.orders.repository import for_user
from keel.settings import Settings, load_settings
from tests.conftest import MakeSettings
from tests.features.catalog.support import PRODUCTS, create_product
from tests.features.orders.support import ORDERS, card, pay, placed_order
from tests.support.accounts import Account, signed_up
from tests.support.assertions import assert_error_body
from tests.support.databases import backend_name

USERS = "/api/v1/users"
BOUND = 2


@pytest.fixture
def settings(make_settings: MakeSettings) -> Settings:
    """Totals are counted up to BOUND rows, so a handful of rows crosses the bound."""
    return make_settings(pagination_exact_total_max=BOUND)


async def assert_own_reads(
    client: httpx.AsyncClient, path: str, items: list[dict[str, Any]], headers: dict[str, str]
) -> None:
    """Each item of a page is, key for key and in the same order, the item's own read."""
    assert items
    for item in items:
        own = await client.get(f"{path}/{item['id']}", headers=headers)
        assert json.dumps(item) == json.dumps(own.json())


async def test_order_page_items_are_the_orders_own_reads(
    client: httpx.AsyncClient, admin: Account
) -> None:
    buyer = await signed_up(client)
    pending = await placed_order(client, admin, buyer)
    paid = await placed_order(client, admin, buyer)
    assert (await pay(client, buyer, paid["id"], card(), "k-1")).status_code == 200
    response = await client.get(ORDERS, headers=buyer.headers)
    assert response.status_code == 200
    items = response.json()["items"]
    assert [item["id"] for item in items] == [paid["id"], pending["id"]]  # newest first
    assert items[0]["payment"] is not None
    assert items[1]["payment"] is None
    await assert_own_reads(client, ORDERS, items, buyer.headers)


async def test_user_page_items_are_the_users_own_reads(
    client: httpx.AsyncClient, admin: Account
) -> None:
    await signed_up(client)
    response = await client.get(USERS, params={"page_size": 100}, headers=admin.headers)
    items = response.json()["items"]
    assert {tuple(item["roles"]) for item in items} >= {("admin",), ("customer",)}
    await assert_own_reads(client, USERS, items, admin.headers)


async def test_product_page_items_are_the_products_own_reads(
    client: httpx.AsyncClient, admin: Account
) -> None:
    await create_product(client, admin, name="Anvil")
    await create_product(client, admin, name="Bellows", is_active=False)
    for who in ({}, admin.headers):  # the public's cached page and an admin's uncached one
        response = await client.get(PRODUCTS, params={"page_size": 100}, headers=who)
        await assert_own_reads(client, PRODUCTS, response.json()["items"], who)


async def orders_page(
    client: httpx.AsyncClient, admin: Account, orders: int, **params: int
) -> httpx.Response:
    """A new customer's page of orders, after placing `orders` of them."""
    buyer = await signed_up(client)
    for _ in range(orders):
        await placed_order(client, admin, buyer)
    return await client.get(ORDERS, params=params, headers=buyer.headers)


async def test_a_total_up_to_the_bound_is_an_exact_count(
    client: httpx.AsyncClient, admin: Account
) -> None:
    response = await orders_page(client, admin, BOUND, page_size=1)
    assert response.json()["total"] == BOUND
    assert response.json()["has_next"] is True
    assert ESTIMATED_HEADER not in response.headers


async def test_a_total_beyond_the_bound_is_an_estimate_on_postgresql_only(
    client: httpx.AsyncClient, admin: Account
) -> None:
    response = await orders_page(client, admin, BOUND + 2, page_size=3)
    body = response.json()
    assert len(body["items"]) == 3
    assert body["has_next"] is True  # exact whatever the total: one row more was read
    if backend_name() == "postgresql":
        assert response.headers[ESTIMATED_HEADER] == "true"
        assert body["total"] >= 4  # never less than the page proves exists
    else:  # no planner estimate: counted
        assert ESTIMATED_HEADER not in response.headers
        assert body["total"] == BOUND + 2


async def test_a_page_past_the_end_still_bounds_its_count(
    client: httpx.AsyncClient, admin: Account
) -> None:
    response = await orders_page(client, admin, BOUND + 1, page=50)
    body = response.json()
    assert body["items"] == []
    assert body["has_next"] is False
    assert body["total"] >= BOUND + 1
    assert (ESTIMATED_HEADER in response.headers) is (backend_name() == "postgresql")


async def test_an_empty_result_is_an_exact_zero(client: httpx.AsyncClient) -> None:
    buyer = await signed_up(client)
    for page in (1, 7):
        response = await client.get(ORDERS, params={"page": page}, headers=buyer.headers)
        assert response.json() | {"page": 1} == {
            "items": [],
            "total": 0,
            "page": 1,
            "page_size": 20,
            "has_next": False,
        }
        assert ESTIMATED_HEADER not in response.headers


async def test_a_cached_estimated_page_keeps_its_header_on_a_hit(
    client: httpx.AsyncClient, admin: Account
) -> None:
    for _ in range(BOUND + 2):
        await create_product(client, admin)
    first = await client.get(PRODUCTS, params={"page_size": 1})
    again = await client.get(PRODUCTS, params={"page_size": 1})
    assert again.content == first.content
    assert again.headers.get(ESTIMATED_HEADER) == first.headers.get(ESTIMATED_HEADER)
    assert (ESTIMATED_HEADER in again.headers) is (backend_name() == "postgresql")


@pytest.mark.parametrize(
    "params",
    [
        {"page": 0},
        {"page": -1},
        {"page": "first"},
        {"page": 1_000_001},
        {"page_size": 0},
        {"page_size": 101},
        {"page_size": "1e3"},
        {"page": "1\x00"},
    ],
)
async def test_bad_page_parameters_are_422(
    app: FastAPI, client: httpx.AsyncClient, admin: Account, params: dict[str, Any]
) -> None:
    lists = paged_lists(app)
    assert {ORDERS, USERS, PRODUCTS} <= set(lists)
    for path in lists:
        response = await client.get(path, params=params, headers=admin.headers)
        assert_error_body(response, 422, "VALIDATION_ERROR")


def paged_lists(app: FastAPI) -> list[str]:
    """Every list the app pages (a GET taking `page` and `page_size`), whatever is enabled."""
    return [
        path
        for path, operations in app.openapi()["paths"].items()
        if {"page", "page_size"}
        <= {p["name"] for p in operations.get("get", {}).get("parameters", ())}
    ]


@pytest.mark.parametrize("value", ["-1", "10000001", "many"])
def test_the_bound_setting_is_refused_out_of_range(value: str) -> None:
    with pytest.raises(ConfigError, match="KEEL_PAGINATION_EXACT_TOTAL_MAX"):
        load_settings(pagination_exact_total_max=value, _env_file=None)


def test_a_stored_page_is_the_body_itself_unless_estimated() -> None:
    exact = PageBody(b'{"items":[]}')
    assert exact.stored() is exact.body
    assert PageBody.from_stored(exact.stored()) == exact
    estimated = PageBody(b'{"items":[]}', estimated=True)
    assert estimated.stored() != estimated.body
    assert PageBody.from_stored(estimated.stored()) == estimated
    assert estimated.response().headers[ESTIMATED_HEADER] == "true"
    assert ESTIMATED_HEADER not in exact.response().headers


async def _plan(connection: AsyncConnection, statement: Any) -> str:
    compiled = statement.compile(connection.sync_engine, compile_kwargs={"literal_binds": True})
    prefix = "EXPLAIN" if backend_name() == "postgresql" else "EXPLAIN QUERY PLAN"
    rows = (await connection.execute(text(f"{prefix} {compiled}"))).all()
    return "\n".join(str(value) for row in rows for value in row)


async def test_an_order_page_reads_the_owner_index(
    client: httpx.AsyncClient, db_connection: AsyncConnection
) -> None:
    buyer = await signed_up(client)
    if backend_name() == "postgresql":  # a tiny table: make the planner show the index
        await db_connection.execute(text("SET LOCAL enable_seqscan = off"))
    statement, owner = for_user(uuid.UUID(buyer.id))
    plan = await _plan(db_connection, statement.params(owner).limit(21))
    assert "ix_orders_user_id_created_at" in plan
    assert "sort" not in plan.lower().replace("ix_orders_user_id_created_at", "")


async def test_product_search_uses_the_trigram_index_on_postgresql(
    db_connection: AsyncConnection,
) -> None:
    shaped, values = product_statement(ProductFilters(q="idge"), include_inactive=True)
    statement = shaped.params(values)
    if backend_name() == "postgresql":
        await db_connection.execute(text("SET LOCAL enable_seqscan = off"))
        plan = await _plan(db_connection, statement.order_by(None))
        assert "ix_products_name_trgm" in plan
        assert "ix_products_sku_trgm" in plan
    else:
        indexes = await db_connection.execute(
            text("SELECT name FROM sqlite_master WHERE type = 'index' AND name LIKE '%trgm%'")
        )
        assert indexes.all() == []  # pg_trgm is PostgreSQL's; SQLite scans


@pytest.mark.parametrize(
    ("sort", "index"),
    [
        (ProductSort.PRICE_DESC, "ix_products_price_amount"),
        (ProductSort.CREATED_AT, "ix_products_created_at"),
        (ProductSort.NAME, "ix_products_name"),
    ],
)
async def test_every_product_sort_reads_an_index(
    db_connection: AsyncConnection, sort: ProductSort, index: str
) -> None:
    if backend_name() == "postgresql":
        await db_connection.execute(text("SET LOCAL enable_seqscan = off"))
    statement, _ = product_statement(ProductFilters(sort=sort), include_inactive=False)
    assert index in await _plan(db_connection, statement.limit(21))
