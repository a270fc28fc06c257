"""The baseline: Keel's answers with nothing around them.

Each route does the work of Keel's route and nothing else, so the difference between the two
servers is Keel's middleware stack, exception handlers, dependency wiring and data layer, not
the cost of the endpoint itself:

- `GET /health` returns a pydantic model that serialises to `{"status": "ok"}`.
- `GET /api/v1/users/me` decodes the bearer token exactly as Keel does (PyJWT, HS256, expiry,
  issuer, audience and required claims checked; `typ` must be "access"), runs one asyncpg
  query for the user, its roles and its live login session, and returns Keel's `UserResponse`
  fields.
- `GET /api/v1/products` runs Keel's first page without Keel's cache, in one statement: the
  products ordered by name then id (LIMIT/OFFSET from `page`/`page_size`) and their count,
  returned as Keel's `Page[ProductResponse]`. As in Keel, a bearer token is optional; with
  one it is checked like `/api/v1/users/me`'s, and an admin also sees inactive products.
- `GET /api/v1/orders` authenticates exactly as `/api/v1/users/me` does, then reads the
  caller's page of orders in one statement (count, newest orders first, each with its lines
  and its payment) and returns Keel's `Page[OrderResponse]`.

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
POOL_SIZE = 10  # Keel's default KEEL_DB_POOL_SIZE; BASELINE_POOL_SIZE overrides it

# The user, its roles (sorted, as Keel's relationship orders them) and the proof that the
# token's session is still live, in one statement: what Keel's
# `auth.repository.active_user_in_session` asks of the database.
USER_IN_SESSION = """
SELECT u.id, u.email, u.full_name, u.is_active, u.is_verified, u.created_at, u.updated_at,
       coalesce(array_agg(r.role ORDER BY r.role) FILTER (WHERE r.role IS NOT NULL), '{}')
           AS roles
FROM users AS u
JOIN auth_sessions AS s
  ON s.user_id = u.id AND s.id = $2 AND s.revoked_at IS NULL AND s.expires_at > $3
LEFT JOIN user_roles AS r ON r.user_id = u.id
WHERE u.id = $1 AND u.is_active
GROUP BY u.id
"""

# Keel's product list (`catalog.repository.filtered` with the default sort, no filters): the
# page and, as Keel's `paginate` does, the count of the whole result, in one statement. The
# count's row always comes back, with the page's columns NULL when the page is empty. The
# public sees active products; an admin (as in Keel) sees every product.
_PRODUCTS_PAGE = """
SELECT t.total, p.id, p.sku, p.name, p.description, p.price_amount, p.currency, p.stock,
       p.is_active, p.image_file_id, p.created_at, p.updated_at
FROM (SELECT count(*) AS total FROM products {where}) AS t
LEFT JOIN LATERAL (
    SELECT * FROM products {where} ORDER BY name, id LIMIT $1 OFFSET $2
) AS p ON true
ORDER BY p.name, p.id
"""
ACTIVE_PRODUCTS_PAGE = _PRODUCTS_PAGE.format(where="WHERE is_active")
ALL_PRODUCTS_PAGE = _PRODUCTS_PAGE.format(where="")

# Keel's order list for a customer (`orders.repository.for_user`): the count, the page of
# newest orders, each with its lines (in position order) and its payment, in one statement.
USER_ORDERS_PAGE = """
SELECT t.total, o.id, o.user_id, o.status, o.currency, o.total_amount, o.created_at,
       o.updated_at,
       ARRAY(
           SELECT ROW(i.product_id, i.sku, i.name, i.unit_price, i.quantity)
           FROM order_items AS i WHERE i.order_id = o.id ORDER BY i.position
       ) AS lines,
       pay.transaction_id, pay.last4, pay.brand, pay.paid_at
FROM (SELECT count(*) AS total FROM orders WHERE user_id = $1) AS t
LEFT JOIN LATERAL (
    SELECT * FROM orders WHERE user_id = $1 ORDER BY created_at DESC, id LIMIT $2 OFFSET $3
) AS o ON true
LEFT JOIN payments AS pay ON pay.order_id = o.id
ORDER BY o.created_at DESC, o.id
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
    is_verified: bool
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
    size = int(os.environ.get("BASELINE_POOL_SIZE", POOL_SIZE))
    pool = await asyncpg.create_pool(config.database_url, min_size=size, max_size=size)
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


async def optional_user(
    request: Request, token: Annotated[str | None, Depends(bearer)]
) -> asyncpg.Record | None:
    """As Keel's `OptionalUser`: nobody without a token, the checked user with one."""
    return await current_user(request, token) if token else None


@app.get("/api/v1/products")
async def list_products(
    request: Request,
    user: Annotated[asyncpg.Record | None, Depends(optional_user)],
    params: Annotated[PageParams, Depends(page_params)],
) -> Page[ProductResponse]:
    admin = user is not None and Role.ADMIN in user["roles"]
    statement = ALL_PRODUCTS_PAGE if admin else ACTIVE_PRODUCTS_PAGE
    rows = await request.state.pool.fetch(statement, params.page_size, params.offset)
    items = [product_response(row) for row in rows if row["id"] is not None]
    total = rows[0]["total"]
    return Page[ProductResponse](
        items=items,
        total=total,
        page=params.page,
        page_size=params.page_size,
        has_next=params.has_next(len(items), total),
    )


def order_response(row: asyncpg.Record) -> OrderResponse:
    """An order row with its lines and payment, shaped as Keel's `OrderResponse`."""
    currency = row["currency"]
    return OrderResponse.model_validate(
        {
            **row,
            "items": [
                {
                    "product_id": product_id,
                    "sku": sku,
                    "name": name,
                    "unit_price": {"amount": unit_price, "currency": currency},
                    "quantity": quantity,
                }
                for product_id, sku, name, unit_price, quantity in row["lines"]
            ],
            "total": {"amount": row["total_amount"], "currency": currency},
            "payment": None
            if row["transaction_id"] is None
            else {
                "transaction_id": row["transaction_id"],
                "last4": row["last4"],
                "brand": row["brand"],
                "paid_at": row["paid_at"],
            },
        }
    )


@app.get("/api/v1/orders")
async def list_orders(
    request: Request,
    user: Annotated[asyncpg.Record, Depends(current_user)],
    params: Annotated[PageParams, Depends(page_params)],
) -> Page[OrderResponse]:
    rows = await request.state.pool.fetch(
        USER_ORDERS_PAGE, user["id"], params.page_size, params.offset
    )
    items = [order_response(row) for row in rows if row["id"] is not None]
    total = rows[0]["total"]
    return Page[OrderResponse](
        items=items,
        total=total,
        page=params.page,
        page_size=params.page_size,
        has_next=params.has_next(len(items), total),
    )
