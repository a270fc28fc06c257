"""Cached public reads: served from the cache, never stale after a write, and never a 500."""

from __future__ import annotations

import uuid

import httpx
import pytest
from sqlalchemy import insert, update
from sqlalchemy.ext.asyncio import AsyncConnection

from keel.core.models import utcnow
from keel.features.catalog.models import Product
from tests.conftest import MakeSettings
from tests.features.catalog.support import create_product
from tests.support.accounts import Account, make_admin, signed_up
from tests.support.app import isolated_app, serve
from tests.support.databases import REDIS_URL
from tests.support.network import closed_port

PRODUCTS = "/api/v1/products"


async def admin_on(http: httpx.AsyncClient, connection: AsyncConnection) -> Account:
    account = await signed_up(http)
    await make_admin(connection, account)
    return account


async def rename_behind_the_apps_back(connection: AsyncConnection, product_id: str) -> None:
    await connection.execute(
        update(Product).where(Product.id == uuid.UUID(product_id)).values(name="Sneaky")
    )


async def test_public_reads_come_from_the_cache_until_a_write(
    client: httpx.AsyncClient, db_connection: AsyncConnection
) -> None:
    admin = await admin_on(client, db_connection)
    created = await create_product(client, admin, name="Original")
    url = f"{PRODUCTS}/{created['id']}"
    assert (await client.get(url)).json()["name"] == "Original"
    await rename_behind_the_apps_back(db_connection, created["id"])
    assert (await client.get(url)).json()["name"] == "Original"  # served from the cache
    patched = await client.patch(url, json={"stock": 9}, headers=admin.headers)
    assert patched.status_code == 200
    fresh = (await client.get(url)).json()
    assert fresh["stock"] == 9
    assert fresh["name"] == "Sneaky"  # the write invalidated every cached catalog entry


async def test_list_is_invalidated_by_create_and_delete(
    client: httpx.AsyncClient, db_connection: AsyncConnection
) -> None:
    admin = await admin_on(client, db_connection)
    tag = uuid.uuid4().hex[:8]
    assert (await client.get(PRODUCTS, params={"q": tag})).json()["total"] == 0
    created = await create_product(client, admin, name=f"{tag} new")
    assert (await client.get(PRODUCTS, params={"q": tag})).json()["total"] == 1
    await client.delete(f"{PRODUCTS}/{created['id']}", headers=admin.headers)
    assert (await client.get(PRODUCTS, params={"q": tag})).json()["total"] == 0


async def test_a_repeated_public_page_is_never_an_admins_or_a_bad_tokens_answer(
    client: httpx.AsyncClient, db_connection: AsyncConnection
) -> None:
    """The public page is answered from its stored bytes on a repeat (core/public_cache.py);
    the same query string with a token still reaches the endpoint."""
    admin = await admin_on(client, db_connection)
    tag = uuid.uuid4().hex[:8]
    await create_product(client, admin, name=f"{tag} on sale")
    await create_product(client, admin, name=f"{tag} withdrawn", is_active=False)
    for _ in range(2):
        public = await client.get(PRODUCTS, params={"q": tag})
        assert [item["name"] for item in public.json()["items"]] == [f"{tag} on sale"]
    as_admin = await client.get(PRODUCTS, params={"q": tag}, headers=admin.headers)
    assert as_admin.json()["total"] == 2
    forged = await client.get(PRODUCTS, params={"q": tag}, headers={"Authorization": "Bearer x"})
    assert forged.status_code == 401


async def test_failed_write_does_not_invalidate(
    client: httpx.AsyncClient, db_connection: AsyncConnection
) -> None:
    admin = await admin_on(client, db_connection)
    first = await create_product(client, admin, name="First")
    second = await create_product(client, admin, name="Second")
    url = f"{PRODUCTS}/{second['id']}"
    await client.get(url)
    await rename_behind_the_apps_back(db_connection, second["id"])
    refused = await client.patch(url, json={"sku": first["sku"]}, headers=admin.headers)
    assert refused.status_code == 409
    assert (await client.get(url)).json()["name"] == "Second"  # still the cached entry


@pytest.mark.skipif(not REDIS_URL, reason="needs KEEL_TEST_REDIS_URL")
async def test_read_after_write_is_fresh_across_instances_sharing_redis(
    make_settings: MakeSettings, db_connection: AsyncConnection
) -> None:
    settings = make_settings(redis_url=REDIS_URL, cache_key_prefix=f"t-{uuid.uuid4().hex}")
    reader_app = isolated_app(settings, db_connection)
    writer_app = isolated_app(settings, db_connection)
    async with serve(reader_app) as reader, serve(writer_app) as writer:
        admin = await admin_on(writer, db_connection)
        created = await create_product(writer, admin, name="Shared")
        url = f"{PRODUCTS}/{created['id']}"
        assert (await reader.get(url)).json()["name"] == "Shared"
        await rename_behind_the_apps_back(db_connection, created["id"])
        assert (await reader.get(url)).json()["name"] == "Shared"  # cached in Redis
        await writer.patch(url, json={"name": "Renamed"}, headers=admin.headers)
        assert (await reader.get(url)).json()["name"] == "Renamed"


async def test_unreachable_redis_bypasses_the_cache(
    make_settings: MakeSettings, db_connection: AsyncConnection
) -> None:
    settings = make_settings(redis_url=f"redis://127.0.0.1:{closed_port()}/0")
    now = utcnow()
    await db_connection.execute(
        insert(Product).values(
            id=uuid.uuid4(),
            sku=f"R-{uuid.uuid4().hex[:8]}",
            name="Redisless",
            description="",
            price_amount=100,
            currency="EUR",
            stock=1,
            is_active=True,
            created_at=now,
            updated_at=now,
        )
    )
    async with serve(isolated_app(settings, db_connection)) as http:
        first = await http.get(PRODUCTS, params={"q": "Redisless"})
        second = await http.get(PRODUCTS, params={"q": "Redisless"})
    for listed in (first, second):
        assert listed.status_code == 200
        assert [p["name"] for p in listed.json()["items"]] == ["Redisless"]
