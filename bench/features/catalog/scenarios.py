"""bench/run.py's catalog scenarios: the public product page (from Keel's read cache) and an
admin's (past it), on a bench catalog that an admin creates through Keel's API."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from functools import cache
from typing import Any

from run import (
    BenchError,
    Scenario,
    Server,
    _describe,
    _promote_to_admin,
    bearer,
    keel_client,
    login,
    register,
)

# The admin is registered as a customer, then promoted in SQL (Keel has no API for that).
BENCH_ADMIN_EMAIL = "bench-admin@example.com"
BENCH_ADMIN_NAME = "Bench Admin"
BENCH_PRODUCTS = 50  # more than one page of 20, so `has_next` is true
BENCH_PRODUCT_SKU = "BENCH-{:04d}"
BENCH_PRODUCT_STOCK = 1_000_000  # every order takes one; this outlasts any number of runs
BENCH_MIN_STOCK = 20  # a product with less is left out of `bench_products` (a page of orders)


def products_setup(keel: Server) -> Mapping[str, str]:
    """products_list is public: it only needs the catalog to exist."""
    bench_products(keel)
    return {}


@cache
def bench_products(keel: Server) -> tuple[str, ...]:
    """Make sure the bench catalog exists and return the ids of its products.

    Cached so a run that measures the product pages and a feature's scenario built on them
    (orders_list) logs the admin in once. Products are created through Keel's admin API, so
    rows, cache invalidation and all are what Keel itself writes; a 409 means an earlier run
    created that SKU. The ids are read back as the admin (past the public cache), whether or
    not this run created them.
    """
    register(keel, BENCH_ADMIN_EMAIL, BENCH_ADMIN_NAME)
    asyncio.run(_promote_to_admin(BENCH_ADMIN_EMAIL))
    with keel_client(keel, bearer(login(keel, BENCH_ADMIN_EMAIL))) as client:
        for number in range(1, BENCH_PRODUCTS + 1):
            created = client.post("/api/v1/products", json=bench_product(number))
            if created.status_code not in (201, 409):
                raise BenchError(f"creating a bench product failed: {_describe(created)}")
        listed = client.get("/api/v1/products", params={"q": "BENCH-", "page_size": 100})
    if listed.status_code != 200:
        raise BenchError(f"listing the bench products failed: {_describe(listed)}")
    ids = tuple(
        product["id"]
        for product in listed.json()["items"]
        if product["is_active"] and product["stock"] >= BENCH_MIN_STOCK
    )
    if not ids:
        raise BenchError("no active bench product has stock left")
    return ids


def bench_product(number: int) -> dict[str, Any]:
    """The request body for bench product `number`: distinct names so ordering has work."""
    return {
        "sku": BENCH_PRODUCT_SKU.format(number),
        "name": f"Bench product {number:04d}",
        "description": f"Product {number} of the benchmark catalog, created by bench/run.py.",
        "price": {"amount": 100 * number + 99, "currency": "EUR"},
        "stock": BENCH_PRODUCT_STOCK,
    }


def admin_bearer(keel: Server) -> Mapping[str, str]:
    """The bench admin's bearer token, with the catalog in place: an admin reads the product
    list past Keel's read cache, so this is Keel's uncached product page."""
    bench_products(keel)
    return bearer(login(keel, BENCH_ADMIN_EMAIL))


SCENARIOS: tuple[Scenario, ...] = (
    Scenario(
        name="products_list",
        description=(
            "GET /api/v1/products, public first page of 20: Keel from its read cache, the "
            "baseline from the database (page and count in one statement) on every request"
        ),
        keel_path="/api/v1/products",
        baseline_path="/api/v1/products",
        target_ratio=2.00,
        setup=products_setup,
    ),
    Scenario(
        name="products_uncached",
        description=(
            "GET /api/v1/products as an admin, first page of 20: both authenticate the token "
            "and read the page and its count from the database (Keel past its cache)"
        ),
        keel_path="/api/v1/products",
        baseline_path="/api/v1/products",
        target_ratio=0.60,
        setup=admin_bearer,
    ),
)
