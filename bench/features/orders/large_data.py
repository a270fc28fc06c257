"""Does a page cost the same at 1,000 rows as at 1,000,000? Keel's list routes on large tables.

Run from the repository root:

    .venv/bin/python bench/features/orders/large_data.py [--sizes 1000,100000,1000000]
                                                         [--duration 5] [--rounds 3]
                                                         [--connections 10]

One PostgreSQL database per size (`keel_bench_large_<size>`, or
`$KEEL_BENCH_LARGE_DATABASE_URL` with the size appended), migrated by `keel migrate`, holds
`size` products and `min(size, --max-orders)` orders (one line each) of one customer, bulk-
loaded in SQL with generate_series (a database already holding them is reused). One
`keel serve` per database (production settings) runs at once; the scenarios are measured
with wrk one server at a time, the sizes alternating within each round, so the machine's
noise falls on every size alike. Reported: the median over rounds of requests/s, p50 and p99,
and each size's ratio to the smallest size's figure in the same run.

Scenarios: the customer's first page of orders, an admin's (uncached) first product page, an
admin's product search by a substring (`q`, served by the trigram index), an admin's page
sorted by price (descending) and the cached public product page. Once the servers are up, the
two ways of reading a page of orders with their lines (a second `IN` query, or a JSON
aggregate in the page's statement) are timed against the largest database with asyncpg,
alternating. Results are printed and written to
`bench/results/large_data.json`. See `bench/README.md`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped]
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # bench/, for run.py

import run
from features.orders.scenarios import BENCH_CUSTOMER_EMAIL, BENCH_CUSTOMER_NAME

DEFAULT_SIZES = (1_000, 100_000, 1_000_000)
DEFAULT_MAX_ORDERS = 100_000
DEFAULT_DURATION = 5
DEFAULT_ROUNDS = 3
DEFAULT_CONNECTIONS = 10
LOAD_TIMEOUT_SECONDS = 900.0  # the bulk load of the largest size, bounded
ADMIN_EMAIL = "bench-large-admin@example.com"
SEARCH = "ab12"  # a substring of a few hundred names per million (md5 text)
STRATEGY_ITERATIONS = 300

PRODUCTS_SQL = """
INSERT INTO products (id, sku, name, description, price_amount, currency, stock, is_active,
                      created_at, updated_at)
SELECT gen_random_uuid(), 'LARGE-' || lpad(g::text, 8, '0'), 'Widget ' || md5(g::text), '',
       100 + g % 100000, 'EUR', 1000, true,
       now() - g * interval '1 second', now() - g * interval '1 second'
FROM generate_series(1, $1) AS g
"""
ORDERS_SQL = """
INSERT INTO orders (id, user_id, status, currency, total_amount, payment_attempt,
                    created_at, updated_at)
SELECT gen_random_uuid(), $1, 'pending', 'EUR', 100, 0,
       now() - g * interval '1 second', now() - g * interval '1 second'
FROM generate_series(1, $2) AS g
"""
LINES_SQL = """
INSERT INTO order_items (id, order_id, product_id, position, sku, name, unit_price, quantity)
SELECT gen_random_uuid(), o.id, p.id, 0, p.sku, p.name, p.price_amount, 1
FROM orders AS o, (SELECT id, sku, name, price_amount FROM products LIMIT 1) AS p
WHERE o.user_id = $1
"""

# The two ways of reading a page of orders with its lines, for the strategy comparison.
PAGE_SQL = """
SELECT o.id, o.user_id, o.status, o.currency, o.total_amount, o.created_at, o.updated_at,
       p.transaction_id, p.last4, p.brand, p.paid_at,
       (SELECT count(*) FROM (SELECT 1 FROM orders WHERE user_id = $1 LIMIT 10001) AS c)
FROM orders AS o LEFT JOIN payments AS p ON p.order_id = o.id
WHERE o.user_id = $1 ORDER BY o.created_at DESC, o.id DESC LIMIT 21
"""
LINES_IN_SQL = """
SELECT order_id, product_id, sku, name, unit_price, quantity FROM order_items
WHERE order_id = ANY($1::uuid[]) ORDER BY order_id, position
"""
PAGE_JSON_SQL = """
SELECT o.id, o.user_id, o.status, o.currency, o.total_amount, o.created_at, o.updated_at,
       p.transaction_id, p.last4, p.brand, p.paid_at,
       (SELECT count(*) FROM (SELECT 1 FROM orders WHERE user_id = $1 LIMIT 10001) AS c),
       (SELECT json_agg(json_build_array(i.product_id, i.sku, i.name, i.unit_price, i.quantity)
                        ORDER BY i.position)
        FROM order_items AS i WHERE i.order_id = o.id) AS lines
FROM orders AS o LEFT JOIN payments AS p ON p.order_id = o.id
WHERE o.user_id = $1 ORDER BY o.created_at DESC, o.id DESC LIMIT 21
"""


@dataclass(frozen=True)
class Figure:
    scenario: str
    size: int
    requests_per_second: float
    p50_ms: float
    p99_ms: float
    estimated_total: bool
    rounds: list[dict[str, float]]


def database_url(size: int) -> str:
    base = os.environ.get(
        "KEEL_BENCH_LARGE_DATABASE_URL",
        "postgresql+asyncpg://postgres@127.0.0.1:5432/keel_bench_large",
    )
    url = make_url(base)
    return url.set(database=f"{url.database}_{size}").render_as_string(hide_password=False)


async def _load(url: str, size: int, orders: int) -> None:
    """Fill the database to `size` products and the customer's `orders`, unless it holds
    them already; ANALYZE so the planner (and the estimated totals) know the sizes."""
    connection = await asyncpg.connect(run.asyncpg_dsn(url), timeout=10)
    try:
        await connection.execute(f"SET statement_timeout = {int(LOAD_TIMEOUT_SECONDS * 1000)}")
        customer = await connection.fetchval(
            "SELECT id FROM users WHERE email = $1", BENCH_CUSTOMER_EMAIL
        )
        products = await connection.fetchval("SELECT count(*) FROM products")
        if products != size:
            await connection.execute(
                "TRUNCATE order_items, payments, refunds, orders, products CASCADE"
            )
            started = time.monotonic()
            await connection.execute(PRODUCTS_SQL, size)
            print(f"  loaded {size:,} products in {time.monotonic() - started:.1f}s")
        have = await connection.fetchval("SELECT count(*) FROM orders WHERE user_id = $1", customer)
        if have != orders:
            await connection.execute("TRUNCATE order_items, payments, refunds, orders CASCADE")
            started = time.monotonic()
            await connection.execute(ORDERS_SQL, customer, orders)
            await connection.execute(LINES_SQL, customer)
            print(f"  loaded {orders:,} orders in {time.monotonic() - started:.1f}s")
        await connection.execute("ANALYZE")
        await connection.execute(
            "UPDATE user_roles SET role = 'admin' "
            "WHERE user_id = (SELECT id FROM users WHERE email = $1)",
            ADMIN_EMAIL,
        )
    finally:
        await connection.close()


async def _strategies(url: str, customer_email: str) -> dict[str, Any]:
    """Median time of a page of orders with lines: page + `IN` query, or one JSON query."""
    connection = await asyncpg.connect(run.asyncpg_dsn(url), timeout=10)
    try:
        user = await connection.fetchval("SELECT id FROM users WHERE email = $1", customer_email)
        timings: dict[str, list[float]] = {"page_then_in": [], "json_aggregate": []}
        for _ in range(STRATEGY_ITERATIONS):
            started = time.perf_counter()
            rows = await connection.fetch(PAGE_SQL, user)
            await connection.fetch(LINES_IN_SQL, [row["id"] for row in rows])
            timings["page_then_in"].append(time.perf_counter() - started)
            started = time.perf_counter()
            rows = await connection.fetch(PAGE_JSON_SQL, user)
            _ = [json.loads(row["lines"]) for row in rows]
            timings["json_aggregate"].append(time.perf_counter() - started)
    finally:
        await connection.close()
    medians = {name: statistics.median(values) * 1000 for name, values in timings.items()}
    return {
        "median_ms": medians,
        "json_over_in": medians["json_aggregate"] / medians["page_then_in"],
        "iterations": STRATEGY_ITERATIONS,
    }


def prepare(size: int, orders: int, environment: Mapping[str, str], keel: run.Server) -> None:
    """Accounts through the API (the customer and the admin), then the bulk load."""
    run.register(keel, BENCH_CUSTOMER_EMAIL, BENCH_CUSTOMER_NAME)
    run.register(keel, ADMIN_EMAIL, "Bench Large Admin")
    asyncio.run(_load(environment["KEEL_DATABASE_URL"], size, orders))


def scenarios(keel: run.Server) -> dict[str, tuple[str, Mapping[str, str]]]:
    customer = run.bearer(run.login(keel, BENCH_CUSTOMER_EMAIL))
    admin = run.bearer(run.login(keel, ADMIN_EMAIL))
    return {
        "orders_page": ("/api/v1/orders", customer),
        "products_page_uncached": ("/api/v1/products", admin),
        "products_search_uncached": (f"/api/v1/products?q={SEARCH}", admin),
        "products_by_price_uncached": ("/api/v1/products?sort=-price", admin),
        "products_page_cached": ("/api/v1/products", {}),
    }


def estimated(keel: run.Server, path: str, headers: Mapping[str, str]) -> bool:
    with run.keel_client(keel, headers) as client:
        response = client.get(path)
    if response.status_code != 200:
        raise run.BenchError(f"{path} answered {run._describe(response)}")
    return response.headers.get("x-total-estimated") == "true"


@dataclass
class Sized:
    size: int
    keel: run.Server
    paths: dict[str, tuple[str, Mapping[str, str]]]


def servers(sizes: Sequence[int], max_orders: int, stack: ExitStack) -> Iterator[Sized]:
    ports = run.free_ports(len(sizes))
    for size, port in zip(sizes, ports, strict=True):
        url = database_url(size)
        run.ensure_database(url)
        environment = run.keel_environment(run.Shared.for_run(url))
        run.migrate(environment)
        keel = stack.enter_context(
            run.running_server(f"keel-large-{size}", run.keel_command(port), environment, port)
        )
        print(f"size {size:,}:")
        prepare(size, min(size, max_orders), environment, keel)
        yield Sized(size=size, keel=keel, paths=scenarios(keel))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default=",".join(str(s) for s in DEFAULT_SIZES))
    parser.add_argument("--max-orders", type=int, default=DEFAULT_MAX_ORDERS)
    parser.add_argument("--duration", type=int, default=DEFAULT_DURATION)
    parser.add_argument("--rounds", type=int, default=DEFAULT_ROUNDS)
    parser.add_argument("--connections", type=int, default=DEFAULT_CONNECTIONS)
    parser.add_argument(
        "--ready-timeout", type=float, default=run.READY_TIMEOUT_SECONDS, help="server start, s"
    )
    args = parser.parse_args(argv)
    run.READY_TIMEOUT_SECONDS = args.ready_timeout  # a loaded machine imports slowly
    sizes = sorted(int(s) for s in args.sizes.split(","))
    signal.signal(signal.SIGTERM, run._interrupt)
    run.RESULTS_DIR.mkdir(exist_ok=True)
    wrk = run.ensure_wrk()
    busy = run.warn_if_busy()
    runs: dict[tuple[str, int], list[dict[str, float]]] = {}
    flags: dict[tuple[str, int], bool] = {}
    try:
        with ExitStack() as stack:
            sized = list(servers(sizes, args.max_orders, stack))
            strategy = asyncio.run(_strategies(database_url(sizes[-1]), BENCH_CUSTOMER_EMAIL))
            print(f"orders with lines, asyncpg medians (largest size): {strategy}")
            for entry in sized:
                for name, (path, headers) in entry.paths.items():
                    flags[name, entry.size] = estimated(entry.keel, path, headers)
            for number in range(args.rounds):
                for name in sized[0].paths:
                    order = sized if number % 2 == 0 else list(reversed(sized))
                    for entry in order:
                        path, headers = entry.paths[name]
                        report = run.run_wrk(
                            wrk,
                            f"{entry.keel.base_url}{path}",
                            duration=args.duration,
                            connections=args.connections,
                            headers=headers,
                        )
                        measured = run.parse_wrk(report)
                        runs.setdefault((name, entry.size), []).append(
                            {
                                "rps": measured.requests_per_second,
                                "p50_ms": measured.p50_ms,
                                "p99_ms": measured.p99_ms,
                            }
                        )
                print(f"round {number + 1}/{args.rounds} done")
    except run.BenchError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    figures = [
        Figure(
            scenario=name,
            size=size,
            requests_per_second=statistics.median(r["rps"] for r in rounds),
            p50_ms=statistics.median(r["p50_ms"] for r in rounds),
            p99_ms=statistics.median(r["p99_ms"] for r in rounds),
            estimated_total=flags[name, size],
            rounds=rounds,
        )
        for (name, size), rounds in runs.items()
    ]
    print(table(figures, sizes[0]))
    result = {
        "at": datetime.now(UTC).isoformat(),
        "arguments": vars(args),
        "machine": run.machine_description(busy),
        "children_strategies": strategy,
        "figures": [asdict(figure) for figure in figures],
    }
    (run.RESULTS_DIR / "large_data.json").write_text(json.dumps(result, indent=2) + "\n")
    return 0


def table(figures: Sequence[Figure], smallest: int) -> str:
    base = {f.scenario: f for f in figures if f.size == smallest}
    lines = [
        "| scenario | rows | req/s | p50 ms | p99 ms | p50 vs smallest | total |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for figure in sorted(figures, key=lambda f: (f.scenario, f.size)):
        ratio = figure.p50_ms / base[figure.scenario].p50_ms
        total = "estimate" if figure.estimated_total else "exact"
        lines.append(
            f"| {figure.scenario} | {figure.size:,} | {figure.requests_per_second:,.0f} "
            f"| {figure.p50_ms:.2f} | {figure.p99_ms:.2f} | {ratio:.2f}x | {total} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
