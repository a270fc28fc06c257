"""Catalog rules: unique SKUs, inactive products hidden from the public, cached public reads.

Public reads go through the read cache; every write invalidates the catalog namespace after
its transaction commits, so no reader anywhere sees a product older than the last write.
Admins read past the cache (they see inactive products, and must see their own writes).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from keel.core.cache import ReadCache
from keel.core.database import after_commit
from keel.core.errors import ConflictError, FieldError, NotFoundError, ValidationFailedError
from keel.core.pagination import PageBody, PageParams, fetch_page
from keel.core.patching import sent_fields
from keel.core.reads import Reads
from keel.core.storage import Storage
from keel.features.catalog import repository
from keel.features.catalog.models import Product
from keel.features.catalog.schemas import (
    ProductCreate,
    ProductFilters,
    ProductResponse,
    ProductUpdate,
    product_fields,
)
from keel.features.files import service as files_service

NAMESPACE = "catalog"


def _sku_taken() -> ConflictError:
    return ConflictError("A product with this SKU already exists", details={"field": "sku"})


def _not_found() -> NotFoundError:
    return NotFoundError("Product not found")


async def list_products(
    reads: Reads,
    cache: ReadCache,
    filters: ProductFilters,
    params: PageParams,
    *,
    include_inactive: bool,
) -> PageBody:
    """One page (cached for the public: a hit is the stored bytes, as they are)."""

    async def load() -> bytes:
        statement, values = repository.filtered(filters, include_inactive=include_inactive)
        page = await fetch_page(reads, statement, params, values=values)
        return page.render([product_fields(row) for row in page.rows]).stored()

    if include_inactive:
        return PageBody.from_stored(await load())
    key = f"list:{filters.model_dump_json()}:{params.page}:{params.page_size}"
    return PageBody.from_stored(await cache.get_or_load(NAMESPACE, key, load))


async def get_product(
    session: AsyncSession, cache: ReadCache, product_id: uuid.UUID, *, include_inactive: bool
) -> bytes:
    """One product as JSON bytes (cached for the public, including "not for sale")."""

    async def load() -> bytes:
        product = await repository.get(session, product_id)
        if product is None or not (product.is_active or include_inactive):
            return b""  # remembered too: a missing product costs no query either
        return ProductResponse.model_validate(product).model_dump_json().encode()

    found = (
        await load()
        if include_inactive
        else await cache.get_or_load(NAMESPACE, f"item:{product_id}", load)
    )
    if not found:
        raise _not_found()
    return found


def _invalidate_after_commit(session: AsyncSession, cache: ReadCache) -> None:
    after_commit(session, lambda: cache.invalidate(NAMESPACE))


async def create_product(
    session: AsyncSession, cache: ReadCache, data: ProductCreate
) -> ProductResponse:
    product = Product(
        sku=data.sku,
        name=data.name,
        description=data.description,
        price_amount=data.price.amount,
        currency=data.price.currency,
        stock=data.stock,
        is_active=data.is_active,
    )
    if not await repository.insert(session, product):
        raise _sku_taken()
    _invalidate_after_commit(session, cache)
    return ProductResponse.model_validate(product)


async def update_product(
    session: AsyncSession, cache: ReadCache, product_id: uuid.UUID, changes: ProductUpdate
) -> ProductResponse:
    product = await repository.get(session, product_id)
    if product is None:
        raise _not_found()
    sent = sent_fields(changes)
    for field in sent - {"price"}:
        setattr(product, field, getattr(changes, field))
    if changes.price is not None:
        product.price_amount = changes.price.amount
        product.currency = changes.price.currency
    if not await repository.save(session):
        raise _sku_taken()
    _invalidate_after_commit(session, cache)
    return ProductResponse.model_validate(product)


async def set_image(
    session: AsyncSession, cache: ReadCache, product_id: uuid.UUID, file_id: uuid.UUID | None
) -> ProductResponse:
    product = await repository.get(session, product_id)
    if product is None:
        raise _not_found()
    if file_id is not None:
        await files_service.read_image(session, file_id)
    await repository.set_image(session, product, file_id)
    _invalidate_after_commit(session, cache)
    return ProductResponse.model_validate(product)


async def product_image(
    session: AsyncSession,
    storage: Storage,
    product_id: uuid.UUID,
    *,
    include_inactive: bool,
    range_header: str | None,
) -> files_service.Download:
    """The image of a product, for whoever may see the product (the public, for an active
    one): the file's own endpoint is for its owner, an admin, not for the shop's visitors."""
    product = await repository.get(session, product_id)
    if product is None or not (product.is_active or include_inactive):
        raise _not_found()
    if product.image_file_id is None:
        raise NotFoundError("This product has no image")
    return await files_service.download_published(
        session, storage, product.image_file_id, range_header
    )


async def delete_product(session: AsyncSession, cache: ReadCache, product_id: uuid.UUID) -> None:
    """Delete; a product that orders refer to is deactivated instead (its history stays)."""
    product = await repository.get(session, product_id)
    if product is None:
        raise _not_found()
    if not await repository.delete_unless_referenced(session, product):
        await repository.deactivate(session, product)
    _invalidate_after_commit(session, cache)


async def import_batch(
    session: AsyncSession, cache: ReadCache, rows: Sequence[Sequence[Any]]
) -> tuple[int, int]:
    """Create or overwrite products by SKU; returns (created, updated). Rows are validated
    tuples of `repository.IMPORTED_COLUMNS` with unique SKUs. Images and ids of existing
    products are kept."""
    if not rows:
        return 0, 0
    created = await repository.upsert_by_sku(session, rows)
    _invalidate_after_commit(session, cache)
    return created, len(rows) - created


async def end_import(session: AsyncSession) -> None:
    """Release what a session's imports held (PostgreSQL's staging table)."""
    await repository.drop_staging(session)


@dataclass(frozen=True, slots=True)
class ReservedLine:
    product_id: uuid.UUID
    sku: str
    name: str
    unit_price: int
    currency: str
    quantity: int


async def reserve_stock(
    session: AsyncSession, cache: ReadCache, lines: Sequence[tuple[uuid.UUID, int]]
) -> list[ReservedLine]:
    """Take stock for every line in this transaction, or raise and take nothing.

    Lines must name existing, active products of one currency (422 otherwise, naming the
    line); a line asking for more than is left is a 409. Rows are updated in id order so two
    orders for the same products never deadlock.
    """
    products = {p.id: p for p in await repository.get_many(session, [pid for pid, _ in lines])}
    unknown = [
        FieldError(("body", "items", index, "product_id"), "no such product", "missing")
        for index, (product_id, _) in enumerate(lines)
        if product_id not in products or not products[product_id].is_active
    ]
    if unknown:
        raise ValidationFailedError(
            "Some products do not exist or are not for sale", errors=unknown
        )
    currencies = {products[product_id].currency for product_id, _ in lines}
    if len(currencies) > 1:
        raise ValidationFailedError.field(
            ("body", "items"),
            "mixed currencies",
            "currency",
            message="An order is paid in one currency",
        )
    for product_id, quantity in sorted(lines, key=lambda line: line[0]):
        if not await repository.take_stock(session, product_id, quantity):
            raise ConflictError(
                "Not enough stock",
                details={"product_id": str(product_id), "requested": quantity},
            )
    _invalidate_after_commit(session, cache)
    return [
        ReservedLine(
            product_id=product_id,
            sku=products[product_id].sku,
            name=products[product_id].name,
            unit_price=products[product_id].price_amount,
            currency=products[product_id].currency,
            quantity=quantity,
        )
        for product_id, quantity in lines
    ]


async def release_stock(
    session: AsyncSession, cache: ReadCache, lines: Sequence[tuple[uuid.UUID, int]]
) -> None:
    for product_id, quantity in sorted(lines, key=lambda line: line[0]):
        await repository.return_stock(session, product_id, quantity)
    _invalidate_after_commit(session, cache)
