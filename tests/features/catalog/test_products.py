"""Products: admin writes, public reads, filters, sorting, inactive products, validation."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from keel.features.catalog.schemas import ProductFilters
from tests.features.catalog.support import PRODUCTS, create_product, product
from tests.support.accounts import Account, signed_up
from tests.support.assertions import assert_error_body


@pytest.fixture
async def customer(client: httpx.AsyncClient) -> Account:
    return await signed_up(client)


async def test_admin_creates_and_anyone_reads(client: httpx.AsyncClient, admin: Account) -> None:
    created = await create_product(client, admin, name="Lamp")
    assert created["price"] == {"amount": 1999, "currency": "EUR"}
    assert created["image_file_id"] is None
    public = await client.get(f"{PRODUCTS}/{created['id']}")
    assert public.status_code == 200
    assert public.json() == created


async def test_duplicate_sku_is_409(client: httpx.AsyncClient, admin: Account) -> None:
    first = await create_product(client, admin)
    again = await client.post(PRODUCTS, json=product(sku=first["sku"]), headers=admin.headers)
    error = assert_error_body(again, 409, "CONFLICT")
    assert error["details"] == {"field": "sku"}


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"price": {"amount": 10.5, "currency": "EUR"}}, "amount"),
        ({"price": {"amount": -1, "currency": "EUR"}}, "amount"),
        ({"price": {"amount": 100, "currency": "eur"}}, "currency"),
        ({"stock": -1}, "stock"),
        ({"sku": "bad sku!"}, "sku"),
        ({"name": ""}, "name"),
        ({"colour": "red"}, "colour"),
    ],
)
async def test_invalid_products_are_422(
    client: httpx.AsyncClient, admin: Account, overrides: dict[str, Any], field: str
) -> None:
    response = await client.post(PRODUCTS, json=product(**overrides), headers=admin.headers)
    error = assert_error_body(response, 422, "VALIDATION_ERROR")
    assert field in error["details"]["errors"][0]["loc"]  # type: ignore[index]


async def test_writes_need_an_admin(client: httpx.AsyncClient, customer: Account) -> None:
    anonymous = await client.post(PRODUCTS, json=product())
    forbidden = await client.post(PRODUCTS, json=product(), headers=customer.headers)
    assert_error_body(anonymous, 401, "UNAUTHORIZED")
    assert_error_body(forbidden, 403, "FORBIDDEN")
    some_id = uuid.uuid4()
    for method in ("PATCH", "DELETE"):
        response = await client.request(
            method, f"{PRODUCTS}/{some_id}", json={"name": "x"}, headers=customer.headers
        )
        assert_error_body(response, 403, "FORBIDDEN")


async def test_patch_changes_only_sent_fields(client: httpx.AsyncClient, admin: Account) -> None:
    created = await create_product(client, admin, name="Old", stock=3)
    response = await client.patch(
        f"{PRODUCTS}/{created['id']}",
        json={"price": {"amount": 500, "currency": "USD"}},
        headers=admin.headers,
    )
    assert response.status_code == 200
    updated = response.json()
    assert updated["price"] == {"amount": 500, "currency": "USD"}
    assert updated["name"] == "Old"
    assert updated["stock"] == 3


@pytest.mark.parametrize("field", ["name", "price", "stock", "sku", "is_active"])
async def test_patch_refuses_nulls(client: httpx.AsyncClient, admin: Account, field: str) -> None:
    created = await create_product(client, admin)
    response = await client.patch(
        f"{PRODUCTS}/{created['id']}", json={field: None}, headers=admin.headers
    )
    assert_error_body(response, 422, "VALIDATION_ERROR")


@pytest.mark.parametrize("flag", [0, 1, "true", "yes"])
async def test_is_active_must_be_a_json_boolean(
    client: httpx.AsyncClient, admin: Account, flag: object
) -> None:
    """The schema says boolean; lax parsing used to take 0 or "yes" and store a flag."""
    created = await client.post(PRODUCTS, json=product(is_active=flag), headers=admin.headers)
    assert_error_body(created, 422, "VALIDATION_ERROR")
    existing = await create_product(client, admin)
    patched = await client.patch(
        f"{PRODUCTS}/{existing['id']}", json={"is_active": flag}, headers=admin.headers
    )
    assert_error_body(patched, 422, "VALIDATION_ERROR")


async def test_patch_to_a_taken_sku_is_409(client: httpx.AsyncClient, admin: Account) -> None:
    first = await create_product(client, admin)
    second = await create_product(client, admin)
    response = await client.patch(
        f"{PRODUCTS}/{second['id']}", json={"sku": first["sku"]}, headers=admin.headers
    )
    assert_error_body(response, 409, "CONFLICT")


async def test_inactive_products_are_hidden_from_the_public(
    client: httpx.AsyncClient, admin: Account, customer: Account
) -> None:
    hidden = await create_product(client, admin, name="Hidden thing", is_active=False)
    assert_error_body(await client.get(f"{PRODUCTS}/{hidden['id']}"), 404, "NOT_FOUND")
    assert_error_body(
        await client.get(f"{PRODUCTS}/{hidden['id']}", headers=customer.headers), 404, "NOT_FOUND"
    )
    public_list = await client.get(PRODUCTS, params={"q": "Hidden thing"})
    assert public_list.json()["items"] == []
    admin_view = await client.get(f"{PRODUCTS}/{hidden['id']}", headers=admin.headers)
    assert admin_view.status_code == 200
    admin_list = await client.get(PRODUCTS, params={"q": "Hidden thing"}, headers=admin.headers)
    assert [p["id"] for p in admin_list.json()["items"]] == [hidden["id"]]


async def test_filters_and_sorting(client: httpx.AsyncClient, admin: Account) -> None:
    tag = uuid.uuid4().hex[:6]
    cheap = await create_product(
        client, admin, name=f"{tag} apple", price={"amount": 100, "currency": "EUR"}
    )
    mid = await create_product(
        client, admin, name=f"{tag} banana", price={"amount": 500, "currency": "EUR"}, stock=0
    )
    dear = await create_product(
        client, admin, name=f"{tag} cherry", price={"amount": 900, "currency": "EUR"}
    )

    async def ids(**params: Any) -> list[str]:
        response = await client.get(PRODUCTS, params={"q": tag, **params})
        assert response.status_code == 200, response.text
        return [p["id"] for p in response.json()["items"]]

    assert await ids() == [cheap["id"], mid["id"], dear["id"]]
    assert await ids(sort="-price") == [dear["id"], mid["id"], cheap["id"]]
    assert await ids(sort="-name") == [dear["id"], mid["id"], cheap["id"]]
    assert await ids(min_price=200, max_price=900) == [mid["id"], dear["id"]]
    assert await ids(in_stock=True) == [cheap["id"], dear["id"]]
    assert await ids(in_stock=False) == [mid["id"]]
    assert await ids(q=cheap["sku"].lower()) == [cheap["id"]]
    page = (await client.get(PRODUCTS, params={"q": tag, "page_size": 2})).json()
    assert page["total"] == 3
    assert page["has_next"] is True


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"sort": "stock"}, "sort"),
        ({"min_price": -1}, "min_price"),
        ({"min_price": 10, "max_price": 5}, "min_price"),
        ({"page_size": 0}, "page_size"),
        ({"in_stock": "maybe"}, "in_stock"),
    ],
)
async def test_bad_list_parameters_are_422(
    client: httpx.AsyncClient, params: dict[str, Any], field: str
) -> None:
    error = assert_error_body(await client.get(PRODUCTS, params=params), 422, "VALIDATION_ERROR")
    assert error["details"]["errors"][0]["loc"] == ["query", field]  # type: ignore[index]


def test_the_price_range_rule_names_min_price() -> None:
    assert ProductFilters(min_price=5, max_price=5).min_price == 5  # an exact price is a range
    assert ProductFilters(min_price=5).max_price is None  # one bound alone is no contradiction
    with pytest.raises(ValidationError) as caught:
        ProductFilters(min_price=6, max_price=5)
    assert caught.value.errors(include_url=False) == [
        {
            "type": "value_error",
            "loc": ("min_price",),
            "msg": "min_price must not exceed max_price",
            "input": 6,
        }
    ]


async def test_a_reversed_price_range_is_the_same_422_as_before(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get(PRODUCTS, params={"min_price": 10, "max_price": 5})
    error = assert_error_body(response, 422, "VALIDATION_ERROR")
    assert error["details"] == {
        "errors": [
            {
                "loc": ["query", "min_price"],
                "msg": "min_price must not exceed max_price",
                "type": "value_error",
            }
        ]
    }


async def test_inactive_products_are_no_query_parameter(
    client: httpx.AsyncClient, admin: Account
) -> None:
    """The filter model takes the whole query string; who sees inactive products is the
    caller's role, never a parameter the public could set."""
    hidden = await create_product(
        client, admin, name=f"Hidden {uuid.uuid4().hex[:6]}", is_active=False
    )
    for extra in ({"include_inactive": "true"}, {"is_active": "false"}):
        listed = await client.get(PRODUCTS, params={"q": hidden["name"], **extra})
        assert listed.status_code == 200
        assert listed.json()["items"] == []


async def test_delete(client: httpx.AsyncClient, admin: Account) -> None:
    created = await create_product(client, admin)
    assert (
        await client.delete(f"{PRODUCTS}/{created['id']}", headers=admin.headers)
    ).status_code == 204
    assert_error_body(await client.get(f"{PRODUCTS}/{created['id']}"), 404, "NOT_FOUND")
    again = await client.delete(f"{PRODUCTS}/{created['id']}", headers=admin.headers)
    assert_error_body(again, 404, "NOT_FOUND")


async def test_a_bad_token_on_a_public_route_is_still_401(client: httpx.AsyncClient) -> None:
    response = await client.get(PRODUCTS, headers={"Authorization": "Bearer nonsense"})
    assert_error_body(response, 401, "UNAUTHORIZED")


async def test_the_largest_price_the_api_accepts_is_stored(
    client: httpx.AsyncClient, admin: Account
) -> None:
    """10^12 minor units once overflowed a 32-bit column into a 500 (now BIGINT)."""
    product = await create_product(client, admin, price={"amount": 10**12, "currency": "EUR"})
    read = await client.get(f"/api/v1/products/{product['id']}")
    assert read.json()["price"] == {"amount": 10**12, "currency": "EUR"}
