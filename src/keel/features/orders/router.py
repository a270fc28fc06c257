from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import Query, status
from fastapi.responses import JSONResponse

from keel.core.dependencies import Cache, DbReads, DbSession, Events
from keel.core.idempotency import REPLAY_HEADERS, IdempotentCall
from keel.core.pagination import PageBody, Pagination, page_route
from keel.core.routers import FeatureRouter
from keel.features.auth.dependencies import CurrentPrincipal, CurrentUser, VerifiedUser
from keel.features.orders import service
from keel.features.orders.schemas import OrderCreate, OrderFilters, OrderResponse, PayRequest
from keel.features.payments.resources import Gateway

router = FeatureRouter(prefix="/orders", tags=["orders"])


@router.post("", status_code=status.HTTP_201_CREATED, summary="Place an order (reserves stock)")
async def create_order(
    body: OrderCreate, user: VerifiedUser, session: DbSession, cache: Cache
) -> OrderResponse:
    return await service.create_order(session, cache, user, body)


@page_route(router, OrderResponse, "List orders (your own; admins: everyone's, filter by user_id)")
async def list_orders(
    principal: CurrentPrincipal,  # the lean caller: a page needs only its id and roles
    reads: DbReads,
    pagination: Pagination,
    filters: Annotated[OrderFilters, Query()],
) -> PageBody:
    return await service.list_orders(reads, principal.user, filters.user_id, pagination)


@router.get("/{order_id:uuid}", summary="Read an order (owner or admin)")
async def read_order(order_id: uuid.UUID, user: CurrentUser, session: DbSession) -> OrderResponse:
    return await service.get_order(session, user, order_id)


@router.post(
    "/{order_id:uuid}/pay",
    summary="Pay a pending order by card (idempotent per Idempotency-Key)",
    responses={200: {"model": OrderResponse, "headers": REPLAY_HEADERS}},
    response_model=OrderResponse,
)
async def pay_order(
    order_id: uuid.UUID,
    body: PayRequest,
    idempotent: IdempotentCall,
    user: CurrentUser,
    session: DbSession,
    gateway: Gateway,
    events: Events,
) -> JSONResponse:
    return await idempotent.run(
        user.id,
        lambda: service.pay_order(
            session, gateway, events, user, order_id, body.card, idempotent.key
        ),
    )


@router.post("/{order_id:uuid}/cancel", summary="Cancel a pending order (releases its stock)")
async def cancel_order(
    order_id: uuid.UUID, user: CurrentUser, session: DbSession, cache: Cache, events: Events
) -> OrderResponse:
    return await service.cancel_order(session, cache, events, user, order_id)
