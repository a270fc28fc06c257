"""The baseline: Keel's answers with nothing around them.

Each route does the work of Keel's route and nothing else, so the difference between the two
servers is Keel's middleware stack, exception handlers, dependency wiring and data layer, not
the cost of the endpoint itself:

- `GET /health` returns a pydantic model that serialises to `{"status": "ok"}`.
- `GET /api/v1/users/me` decodes the bearer token exactly as Keel does (PyJWT, HS256, expiry,
  issuer, audience and required claims checked; `typ` must be "access"), runs one asyncpg
  query for the user, its roles and its live login session, and returns Keel's `UserResponse`
  fields.
- `GET /api/v1/products` runs Keel's public first page without Keel's cache: the active
  products ordered by name then id (LIMIT/OFFSET from `page`/`page_size`) and a count of the
  active products, returned as Keel's `Page[ProductResponse]`.
- `GET /api/v1/orders` authenticates exactly as `/api/v1/users/me` does, then reads the
  caller's page of orders as Keel does (count, newest orders first, their lines, their
  payments) and returns Keel's `Page[OrderResponse]`.

Deliberately no middleware, no settings library and no ORM. The only resource is an asyncpg
pool opened in the lifespan, configured from the environment by `bench/run.py`.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, Generic, TypeVar

import asyncpg  # type: ignore[import-untyped]
import jwt
from fastapi import Depends, FastAPI, HTTPException, Query, Request, status
from fastapi.security import OAuth2PasswordBearer
from pydantic import BaseModel

# Keel's own token rules (keel.core.security.tokens), repeated so the baseline imports nothing
# from Keel.
ALGORITHM = "HS256"
REQUIRED_CLAIMS = ["sub", "exp", "iat", "jti", "iss", "aud", "typ", "sid"]
POOL_SIZE = 10  # Keel's default KEEL_DB_POOL_SIZE

# The user, its roles (sorted, as Keel's relationship orders them) and the proof that the
# token's session is still live, in one statement: what Keel's
# `auth.repository.active_user_in_session` asks of the database.
USER_IN_SESSION = """
SELECT u.id, u.email, u.full_name, u.is_active, u.created_at, u.updated_at,
       coalesce(array_agg(r.role ORDER BY r.role) FILTER (WHERE r.role IS NOT NULL), '{}')
           AS roles
FROM users AS u
JOIN auth_sessions AS s
  ON s.user_id = u.id AND s.id = $2 AND s.revoked_at IS NULL AND s.expires_at > $3
LEFT JOIN user_roles AS r ON r.user_id = u.id
WHERE u.id = $1 AND u.is_active
GROUP BY u.id
"""

# Keel's public product list (`catalog.repository.filtered` with the default sort, no filters):
# the page and, as Keel's `paginate` does, the count of the whole result.
ACTIVE_PRODUCTS_PAGE = """
SELECT id, sku, name, description, price_amount, currency, stock, is_active, image_file_id,
       created_at, updated_at
FROM products
WHERE is_active
ORDER BY name, id
LIMIT $1 OFFSET $2
"""
ACTIVE_PRODUCTS_COUNT = "SELECT count(*) FROM products WHERE is_active"

# Keel's order list for a customer (`orders.repository.for_user`): the count, the page, then
# the lines and payments of that page's orders in one query each, as the ORM's `selectin`
# loading of `Order.items` and `Order.payment` does.
USER_ORDERS_COUNT = "SELECT count(*) FROM orders WHERE user_id = $1"
USER_ORDERS_PAGE = """
SELECT id, user_id, status, currency, total_amount, created_at, updated_at
FROM orders
WHERE user_id = $1
ORDER BY created_at DESC, id
LIMIT $2 OFFSET $3
"""
ORDER_LINES = """
SELECT order_id, product_id, sku, name, unit_price, quantity
FROM order_items
WHERE order_id = ANY($1::uuid[])
ORDER BY order_id, position
"""
ORDER_PAYMENTS = """
SELECT order_id, transaction_id, last4, brand, paid_at
FROM payments
WHERE order_id = ANY($1::uuid[])
"""

T = TypeVar("T")


@dataclass(frozen=True)
class TokenRules:
    """What a token must be signed with and carry; the same values Keel is started with."""

    secret: str
    issuer: str
    audience: str


@dataclass(frozen=True)
class Config:
    """Read from the environment that `bench/run.py` gives the baseline."""

    database_url: str
    tokens: TokenRules

    @classmethod
    def from_environment(cls, environment: Mapping[str, str]) -> Config:
        """Fail at start-up, naming the variable, rather than on the first request."""
        try:
            return cls(
                database_url=environment["BASELINE_DATABASE_URL"],
                tokens=TokenRules(
                    secret=environment["BASELINE_JWT_SECRET"],
                    issuer=environment["BASELINE_JWT_ISSUER"],
                    audience=environment["BASELINE_JWT_AUDIENCE"],
                ),
            )
        except KeyError as missing:
            raise RuntimeError(f"the baseline needs the environment variable {missing}") from None


class Health(BaseModel):
    status: str = "ok"


class Role(StrEnum):
    CUSTOMER = "customer"
    ADMIN = "admin"


class UserResponse(BaseModel):
    """Keel's `UserResponse`: the same fields and types, so serialisation costs the same."""

    id: uuid.UUID
    email: str
    full_name: str
    roles: list[Role]
    is_active: bool
    created_at: datetime
    updated_at: datetime


class Page(BaseModel, Generic[T]):
    """Keel's `Page`: one page of items and what a client needs to ask for the next."""

    items: list[T]
    total: int
    page: int
    page_size: int
    has_next: bool


class Money(BaseModel):
    amount: int
    currency: str


class ProductResponse(BaseModel):
    """Keel's `ProductResponse`: the price nested as `Money`, as Keel answers it."""

    id: uuid.UUID
    sku: str
    name: str
    description: str
    price: Money
    stock: int
    is_active: bool
    image_file_id: uuid.UUID | None
    created_at: datetime
    updated_at: datetime


class OrderStatus(StrEnum):
    PENDING = "pending"
    PAID = "paid"
    CANCELLED = "cancelled"


class OrderLine(BaseModel):
    product_id: uuid.UUID
    sku: str
    name: str
    unit_price: Money
    quantity: int


class Payment(BaseModel):
    transaction_id: str
    last4: str
    brand: str
    paid_at: datetime


class OrderResponse(BaseModel):
    """Keel's `OrderResponse`: lines and total priced in the order's currency."""

    id: uuid.UUID
    user_id: uuid.UUID
    status: OrderStatus
    items: list[OrderLine]
    total: Money
    payment: Payment | None = None
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class PageParams:
    """Keel's `page`/`page_size` query parameters, with the same defaults and bounds."""

    page: int
    page_size: int

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.page_size

    def has_next(self, shown: int, total: int) -> bool:
        return self.offset + shown < total


async def page_params(
    page: Annotated[int, Query(ge=1)] = 1,
    page_size: Annotated[int, Query(ge=1, le=100)] = 20,
) -> PageParams:
    return PageParams(page=page, page_size=page_size)


@asynccontextmanager
async def lifespan(_: FastAPI) -> AsyncIterator[dict[str, Any]]:
    """Open the pool before serving (as Keel's lifespan does) so no request pays for connecting.

    /health needs none of it, but it only answers once the pool is up, so the harness's
    readiness check also proves the database is reachable.
    """
    config = Config.from_environment(os.environ)
    pool = await asyncpg.create_pool(config.database_url, min_size=POOL_SIZE, max_size=POOL_SIZE)
    try:
        yield {"pool": pool, "tokens": config.tokens}
    finally:
        await pool.close()


app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan)
bearer = OAuth2PasswordBearer(tokenUrl="/api/v1/auth/token", auto_error=False)


def unauthorized() -> HTTPException:
    return HTTPException(status.HTTP_401_UNAUTHORIZED, "Invalid or expired token")


def token_subject(token: str, rules: TokenRules) -> tuple[uuid.UUID, uuid.UUID]:
    """(user id, session id) from a valid access token; 401 for anything else, as Keel does."""
    try:
        payload = jwt.decode(
            token,
            rules.secret,
            algorithms=[ALGORITHM],
            audience=rules.audience,
            issuer=rules.issuer,
            options={"require": REQUIRED_CLAIMS},
        )
        user_id, session_id = uuid.UUID(payload["sub"]), uuid.UUID(payload["sid"])
    except (jwt.InvalidTokenError, ValueError, TypeError, KeyError):
        raise unauthorized() from None
    if payload["typ"] != "access":
        raise unauthorized()
    return user_id, session_id


@app.get("/health", response_model=Health)
async def health() -> Health:
    return Health()


async def current_user(
    request: Request, token: Annotated[str | None, Depends(bearer)]
) -> asyncpg.Record:
    """The caller's user row, checked as Keel checks it: valid token, live session, active user."""
    if not token:
        raise unauthorized()
    user_id, session_id = token_subject(token, request.state.tokens)
    pool = request.state.pool
    row = await pool.fetchrow(USER_IN_SESSION, user_id, session_id, datetime.now(UTC))
    if row is None:
        raise unauthorized()
    return row


@app.get("/api/v1/users/me")
async def read_me(user: Annotated[asyncpg.Record, Depends(current_user)]) -> UserResponse:
    return UserResponse.model_validate(dict(user))


def product_response(row: asyncpg.Record) -> ProductResponse:
    """A products row as Keel answers it: price columns folded into a `Money`."""
    return ProductResponse.model_validate(
        {**row, "price": {"amount": row["price_amount"], "currency": row["currency"]}}
    )


@app.get("/api/v1/products")
async def list_products(
    request: Request, params: Annotated[PageParams, Depends(page_params)]
) -> Page[ProductResponse]:
    async with request.state.pool.acquire() as connection:
        total = await connection.fetchval(ACTIVE_PRODUCTS_COUNT)
        rows = await connection.fetch(ACTIVE_PRODUCTS_PAGE, params.page_size, params.offset)
    return Page[ProductResponse](
        items=[product_response(row) for row in rows],
        total=total,
        page=params.page,
        page_size=params.page_size,
        has_next=params.has_next(len(rows), total),
    )


def order_response(
    order: asyncpg.Record, lines: list[asyncpg.Record], payment: asyncpg.Record | None
) -> OrderResponse:
    """An order with its lines and payment, shaped as Keel's `OrderResponse._from_model`."""
    currency = order["currency"]
    return OrderResponse.model_validate(
        {
            **order,
            "items": [
                {**line, "unit_price": {"amount": line["unit_price"], "currency": currency}}
                for line in lines
            ],
            "total": {"amount": order["total_amount"], "currency": currency},
            "payment": None if payment is None else dict(payment),
        }
    )


@app.get("/api/v1/orders")
async def list_orders(
    request: Request,
    user: Annotated[asyncpg.Record, Depends(current_user)],
    params: Annotated[PageParams, Depends(page_params)],
) -> Page[OrderResponse]:
    async with request.state.pool.acquire() as connection:
        total = await connection.fetchval(USER_ORDERS_COUNT, user["id"])
        orders = await connection.fetch(
            USER_ORDERS_PAGE, user["id"], params.page_size, params.offset
        )
        order_ids = [order["id"] for order in orders]
        lines = await connection.fetch(ORDER_LINES, order_ids)
        payments = await connection.fetch(ORDER_PAYMENTS, order_ids)
    lines_by_order: dict[uuid.UUID, list[asyncpg.Record]] = {order_id: [] for order_id in order_ids}
    for line in lines:
        lines_by_order[line["order_id"]].append(line)
    payment_by_order = {payment["order_id"]: payment for payment in payments}
    return Page[OrderResponse](
        items=[
            order_response(order, lines_by_order[order["id"]], payment_by_order.get(order["id"]))
            for order in orders
        ],
        total=total,
        page=params.page,
        page_size=params.page_size,
        has_next=params.has_next(len(orders), total),
    )
