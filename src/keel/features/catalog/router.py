from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import Query, Response, status
from fastapi.responses import StreamingResponse

from keel.core.dependencies import Cache, DbReads, DbSession, Store
from keel.core.downloads import RangeHeader, streamed
from keel.core.pagination import PageBody, Pagination, page_route
from keel.core.public_cache import public_cache_route
from keel.core.routers import FeatureRouter
from keel.features.auth.dependencies import AdminUser, OptionalUser
from keel.features.catalog import service
from keel.features.catalog.schemas import (
    ProductCreate,
    ProductFilters,
    ProductImage,
    ProductResponse,
    ProductUpdate,
)
from keel.features.users.models import Role

router = FeatureRouter(prefix="/products", tags=["catalog"])


@page_route(
    router,
    ProductResponse,
    "List products (public; admins also see inactive ones)",
    route_class=public_cache_route(service.NAMESPACE),  # a repeated public page: stored bytes
)
async def list_products(
    reads: DbReads,
    cache: Cache,
    pagination: Pagination,
    user: OptionalUser,
    filters: Annotated[ProductFilters, Query()],
) -> PageBody:
    admin = user is not None and user.has_role(Role.ADMIN)
    return await service.list_products(reads, cache, filters, pagination, include_inactive=admin)


@router.get("/{product_id:uuid}", summary="Read a product (public)", response_model=ProductResponse)
async def read_product(
    product_id: uuid.UUID, session: DbSession, cache: Cache, user: OptionalUser
) -> Response:
    admin = user is not None and user.has_role(Role.ADMIN)
    body = await service.get_product(session, cache, product_id, include_inactive=admin)
    return Response(body, media_type="application/json")


@router.get(
    "/{product_id:uuid}/image",
    summary="Read a product's image (public, as the product is; a single `Range` gives 206)",
    **streamed("image/*"),
)
async def read_product_image(
    product_id: uuid.UUID,
    session: DbSession,
    storage: Store,
    user: OptionalUser,
    range_: RangeHeader = None,
) -> StreamingResponse:
    admin = user is not None and user.has_role(Role.ADMIN)
    found = await service.product_image(
        session, storage, product_id, include_inactive=admin, range_header=range_
    )
    # Revalidated every time (the image can be replaced). What a non-admin is shown is an
    # active product's image, which shared caches may keep; an admin may be looking at an
    # inactive product's.
    return found.response(cache_control="private, no-cache" if admin else "public, no-cache")


@router.post("", status_code=status.HTTP_201_CREATED, summary="Create a product (admin)")
async def create_product(
    body: ProductCreate, _: AdminUser, session: DbSession, cache: Cache
) -> ProductResponse:
    return await service.create_product(session, cache, body)


@router.patch("/{product_id:uuid}", summary="Change a product (admin)")
async def update_product(
    product_id: uuid.UUID, changes: ProductUpdate, _: AdminUser, session: DbSession, cache: Cache
) -> ProductResponse:
    return await service.update_product(session, cache, product_id, changes)


@router.put("/{product_id:uuid}/image", summary="Set or clear a product's image (admin)")
async def set_product_image(
    product_id: uuid.UUID, body: ProductImage, _: AdminUser, session: DbSession, cache: Cache
) -> ProductResponse:
    return await service.set_image(session, cache, product_id, body.file_id)


@router.delete(
    "/{product_id:uuid}", status_code=status.HTTP_204_NO_CONTENT, summary="Delete a product (admin)"
)
async def delete_product(
    product_id: uuid.UUID, _: AdminUser, session: DbSession, cache: Cache
) -> None:
    await service.delete_product(session, cache, product_id)
