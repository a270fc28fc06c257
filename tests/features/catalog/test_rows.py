"""`Rows`: the add/get/delete every feature repository binds to its model, on a real database."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from keel.core.repository import Rows
from keel.features.catalog.models import Product

products = Rows(Product)


@pytest.fixture
async def session(db_connection: AsyncConnection) -> AsyncIterator[AsyncSession]:
    async with AsyncSession(
        bind=db_connection, join_transaction_mode="create_savepoint", expire_on_commit=False
    ) as opened:
        yield opened


def _product(sku: str) -> Product:
    return Product(
        sku=sku, name="Widget", description="", price_amount=100, currency="EUR", stock=1
    )


async def test_add_inserts_at_once_and_get_finds_it(session: AsyncSession) -> None:
    added = await products.add(session, _product(f"R-{uuid.uuid4().hex[:8]}"))
    assert added.created_at is not None  # flushed: database defaults are there
    session.expunge_all()  # so `get` reads the row, not the identity map
    found = await products.get(session, added.id)
    assert found is not None
    assert found.sku == added.sku


async def test_get_of_an_unknown_id_is_none(session: AsyncSession) -> None:
    assert await products.get(session, uuid.uuid4()) is None


async def test_add_raises_a_constraint_violation_where_it_is_called(
    session: AsyncSession,
) -> None:
    sku = f"R-{uuid.uuid4().hex[:8]}"
    await products.add(session, _product(sku))
    with pytest.raises(IntegrityError):
        await products.add(session, _product(sku))


async def test_delete_removes_the_row(session: AsyncSession) -> None:
    added = await products.add(session, _product(f"R-{uuid.uuid4().hex[:8]}"))
    await products.delete(session, added)
    session.expunge_all()
    assert await products.get(session, added.id) is None


async def test_find_names_the_row_by_a_unique_column(session: AsyncSession) -> None:
    added = await products.add(session, _product(f"R-{uuid.uuid4().hex[:8]}"))
    assert await products.find(session, Product.sku == added.sku) is added


async def test_find_of_no_match_is_none(session: AsyncSession) -> None:
    assert await products.find(session, Product.sku == f"R-{uuid.uuid4().hex}") is None
