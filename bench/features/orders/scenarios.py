"""bench/run.py's orders scenario: a customer's first page of orders, placed through Keel's
API on the catalog's bench products (orders requires catalog, so they are there)."""

from __future__ import annotations

from collections.abc import Mapping

from features.catalog.scenarios import bench_products
from run import BenchError, Scenario, Server, _describe, bearer, keel_client, login, register

# orders_list reads the orders of its own customer, so the users_me account stays order-free
# and each account logs in at most once per run (Keel allows 5 logins a minute per account).
BENCH_CUSTOMER_EMAIL = "bench-orders@example.com"
BENCH_CUSTOMER_NAME = "Bench Customer"
BENCH_ORDERS = 20  # one full page


def customer_with_orders(keel: Server) -> Mapping[str, str]:
    """Log the bench customer in and top its orders up to BENCH_ORDERS; return its bearer.

    Only the missing orders are placed, so repeated runs neither grow the list (and with it
    the count) nor drain stock. Orders are placed through Keel's API, one line each, cycling
    through the bench products.
    """
    products = bench_products(keel)
    register(keel, BENCH_CUSTOMER_EMAIL, BENCH_CUSTOMER_NAME)
    headers = bearer(login(keel, BENCH_CUSTOMER_EMAIL))
    with keel_client(keel, headers) as client:
        existing = client.get("/api/v1/orders", params={"page_size": 1})
        if existing.status_code != 200:
            raise BenchError(f"listing the bench customer's orders failed: {_describe(existing)}")
        for number in range(existing.json()["total"], BENCH_ORDERS):
            line = {"product_id": products[number % len(products)], "quantity": 1}
            placed = client.post("/api/v1/orders", json={"items": [line]})
            if placed.status_code != 201:
                raise BenchError(f"placing a bench order failed: {_describe(placed)}")
    return headers


SCENARIOS: tuple[Scenario, ...] = (
    Scenario(
        name="orders_list",
        description=(
            "GET /api/v1/orders with a bearer token: the caller's 20 newest orders with their "
            "lines and payments and the count (the baseline: auth query, then one statement)"
        ),
        keel_path="/api/v1/orders",
        baseline_path="/api/v1/orders",
        target_ratio=0.60,
        setup=customer_with_orders,
    ),
)
