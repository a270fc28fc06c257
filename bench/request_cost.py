"""The CPU cost of one request through Keel's whole ASGI app, without a server or a network.

It builds the app exactly as `keel serve` does (production settings, as `bench/run.py` sets
them), runs its lifespan, and then calls the ASGI app directly with the scope uvicorn would
build, `--requests` times in a row, on one event loop. What it measures is therefore what
Keel itself adds per request (middleware, routing, dependencies, the data layer, the
serialisation), with neither the HTTP parser nor wrk in the figures. Three ways to read it:

    # wall time per request (noisy on a shared machine: compare paired runs)
    .venv/bin/python bench/request_cost.py --path /health --requests 20000
    # where the time goes, by function (cProfile; its overhead inflates small calls)
    .venv/bin/python bench/request_cost.py --path /api/v1/users/me --requests 3000 \
        --cprofile bench/results/users_me.pstats
    # instructions per request, stable whatever else the machine does (valgrind): run twice
    # with different counts and divide the difference (start-up cancels out)
    PYTHONHASHSEED=0 valgrind --tool=callgrind --callgrind-out-file=/tmp/cg.%p \
        .venv/bin/python bench/request_cost.py --path /health --requests 2000

    # paired rounds against another commit (its `src/` extracted and put first on
    # PYTHONPATH; the same venv, database and this script), alternating, CPU µs each
    .venv/bin/python bench/request_cost.py --scenario orders_list --against main --rounds 5

`--scenario` names `bench/run.py`'s scenarios (`health`, `users_me`, `orders_list`,
`products_list`: the cached public page, `products_uncached`: the admin's page past the
cache). All but `health` need PostgreSQL: the database (`KEEL_BENCH_DATABASE_URL`, default
`keel_bench` on 127.0.0.1) is created and migrated if needed, and the accounts
(`cost-*@example.com`), 50 products and 20 orders are made through the app on first use
(the admin promoted and the accounts marked verified in SQL, as `bench/run.py` does); each
account logs in once per run.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATABASE_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/keel_bench"
EMAIL = "cost-user@example.com"
ADMIN_EMAIL = "cost-admin@example.com"
CUSTOMER_EMAIL = "cost-orders@example.com"
PRODUCTS = 50
ORDERS = 20
SCENARIOS = {  # name: (path, account whose bearer it sends, or None)
    "health": ("/health", None),
    "users_me": ("/api/v1/users/me", EMAIL),
    "orders_list": ("/api/v1/orders", CUSTOMER_EMAIL),
    "products_list": ("/api/v1/products", None),
    "products_uncached": ("/api/v1/products", ADMIN_EMAIL),
}
PASSWORD = "cost-user-password-1"  # noqa: S105 - a throwaway bench account

Message = MutableMapping[str, Any]


def production_environment(database_url: str) -> dict[str, str]:
    """The settings `bench/run.py` gives Keel (production, a limit out of reach)."""
    return {
        "KEEL_ENVIRONMENT": "production",
        "KEEL_DATABASE_URL": database_url,
        "KEEL_JWT_SECRET": secrets.token_hex(32),
        "KEEL_JWT_ISSUER": "keel",
        "KEEL_JWT_AUDIENCE": "keel-api",
        "KEEL_ACCESS_TOKEN_MINUTES": "30",
        "KEEL_RATE_LIMIT_DEFAULT": "100000000/minute",
        "KEEL_ALLOWED_HOSTS": "127.0.0.1,localhost",
        "KEEL_PAYMENT_GATEWAY": "http",
        "KEEL_PAYMENT_GATEWAY_URL": "http://127.0.0.1:9",
        "KEEL_LOG_LEVEL": os.environ.get("COST_LOG_LEVEL", "WARNING"),
    }


def scope_for(
    method: str, path: str, state: dict[str, Any], headers: list[tuple[bytes, bytes]]
) -> dict[str, Any]:
    """The scope uvicorn (httptools) builds for a request from wrk."""
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "server": ("127.0.0.1", 8000),
        "client": ("127.0.0.1", 40000),
        "scheme": "http",
        "method": method,
        "root_path": "",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "headers": [(b"host", b"127.0.0.1:8000"), *headers],
        "state": state.copy(),  # uvicorn copies the lifespan state into every request
    }


async def call(
    app: Callable[..., Awaitable[None]],
    scope: dict[str, Any],
    body: bytes = b"",
) -> tuple[int, bytes]:
    sent: list[Message] = []
    delivered = False

    async def receive() -> Message:
        nonlocal delivered
        if delivered:
            await asyncio.Event().wait()  # a client that sends nothing more
        delivered = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    await app(scope, receive, send)
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    return status, b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")


async def token_for(app: Any, state: dict[str, Any], email: str = EMAIL) -> str:
    json_headers = [(b"content-type", b"application/json")]
    account = json.dumps({"email": email, "password": PASSWORD, "full_name": "Cost"}).encode()
    status, body = await call(
        app, scope_for("POST", "/api/v1/auth/register", state, json_headers), account
    )
    if status not in (201, 409):
        raise SystemExit(f"register answered {status}: {body!r}")
    await _sql(state, "UPDATE users SET is_verified = true WHERE email = :email", email=email)
    credentials = json.dumps({"email": email, "password": PASSWORD}).encode()
    status, body = await call(
        app, scope_for("POST", "/api/v1/auth/login", state, json_headers), credentials
    )
    if status != 200:
        raise SystemExit(f"login answered {status}: {body!r}")
    return str(json.loads(body)["access_token"])


async def _sql(state: dict[str, Any], statement: str, **values: Any) -> None:
    """A setup step Keel's API cannot do (promote an admin, confirm an address)."""
    from sqlalchemy import text

    async with state["database"].engine.begin() as connection:
        await connection.execute(text(statement), values)


async def catalog_and_orders(app: Any, state: dict[str, Any]) -> None:
    """50 products (an admin creates them; 409: an earlier run did) and the customer's orders
    topped up to 20, one line each, through the app itself."""
    json_headers = [(b"content-type", b"application/json")]
    await token_for(app, state, ADMIN_EMAIL)  # registered, so it can be promoted
    await _sql(
        state,
        "UPDATE user_roles SET role = 'admin' WHERE user_id = "
        "(SELECT id FROM users WHERE email = :email)",
        email=ADMIN_EMAIL,
    )
    admin = [*json_headers, _bearer(await token_for(app, state, ADMIN_EMAIL))]
    for number in range(1, PRODUCTS + 1):
        product = {
            "sku": f"COST-{number:04d}",
            "name": f"Cost product {number:04d}",
            "description": f"Product {number} of bench/request_cost.py's catalog.",
            "price": {"amount": 100 * number + 99, "currency": "EUR"},
            "stock": 1_000_000,
        }
        status, body = await call(
            app, scope_for("POST", "/api/v1/products", state, admin), json.dumps(product).encode()
        )
        if status not in (201, 409):
            raise SystemExit(f"creating a product answered {status}: {body!r}")
    listing = scope_for("GET", "/api/v1/products", state, admin)
    listing["query_string"] = b"q=COST-&page_size=100"
    ids = [item["id"] for item in json.loads((await call(app, listing))[1])["items"]]
    customer = [*json_headers, _bearer(await token_for(app, state, CUSTOMER_EMAIL))]
    status, body = await call(app, scope_for("GET", "/api/v1/orders", state, customer))
    for number in range(json.loads(body)["total"], ORDERS):
        order = {"items": [{"product_id": ids[number % len(ids)], "quantity": 1}]}
        status, body = await call(
            app, scope_for("POST", "/api/v1/orders", state, customer), json.dumps(order).encode()
        )
        if status != 201:
            raise SystemExit(f"placing an order answered {status}: {body!r}")


def _bearer(token: str) -> tuple[bytes, bytes]:
    return (b"authorization", f"Bearer {token}".encode())


async def measure(arguments: argparse.Namespace) -> None:
    from keel.main import create_app

    app = create_app()
    async with app.router.lifespan_context(app) as lifespan_state:
        state = dict(lifespan_state or {})
        headers = [(b"user-agent", b"wrk"), (b"accept", b"*/*")]
        path, account = SCENARIOS.get(arguments.scenario, (arguments.path, EMAIL))
        arguments.path = path
        if arguments.scenario in ("orders_list", "products_list", "products_uncached"):
            await catalog_and_orders(app, state)
        if account is not None and path != "/health":
            headers.append(_bearer(await token_for(app, state, account)))
        status, body = await call(app, scope_for("GET", arguments.path, state, headers))
        if status != 200:
            raise SystemExit(f"{arguments.path} answered {status}: {body!r}")
        for _ in range(arguments.warmup):
            await call(app, scope_for("GET", arguments.path, state, headers))
        # CPU time, not wall time: a coroutine waiting on the database costs nothing here.
        profiler = cProfile.Profile(time.process_time) if arguments.cprofile else None
        if profiler is not None:
            profiler.enable()
        started, cpu_started = time.perf_counter(), time.process_time()
        for _ in range(arguments.requests):
            await call(app, scope_for("GET", arguments.path, state, headers))
        elapsed = time.perf_counter() - started
        cpu = time.process_time() - cpu_started
        if profiler is not None:
            profiler.disable()
            profiler.dump_stats(arguments.cprofile)
    count = max(arguments.requests, 1)
    print(
        f"{arguments.path}: {arguments.requests} requests, {elapsed / count * 1e6:.1f} µs each"
        f" (wall), {cpu / count * 1e6:.1f} µs of this process's CPU"
    )
    print(json.dumps({"cpu_us": cpu / count * 1e6, "wall_us": elapsed / count * 1e6}))


# Outermost first: (file suffix, function) of each layer's entry point in a cProfile, and what
# to call it. A layer's own share is its inclusive time less the next layer's.
LAYERS = (
    ("fastapi/applications.py", "__call__", "FastAPI entry (native telemetry check)"),
    ("starlette/applications.py", "__call__", "Starlette app"),
    ("starlette/middleware/errors.py", "__call__", "ServerErrorMiddleware"),
    ("fastapi/telemetry/_asgi.py", "__call__", "ExceptionTelemetryMiddleware"),
    ("fastapi/_body_limit.py", "__call__", "AppBodyLimitMiddleware"),
    (
        "keel/core/middleware/request_context.py",
        "__call__",
        "request context (id, headers, log, metrics)",
    ),
    ("keel/core/middleware/trusted_hosts.py", "__call__", "trusted hosts"),
    ("keel/core/ratelimit.py", "__call__", "rate limit"),
    ("keel/core/middleware/gzip.py", "__call__", "gzip"),
    ("keel/core/middleware/body_limit.py", "__call__", "body size limit"),
    ("starlette/middleware/exceptions.py", "__call__", "ExceptionMiddleware"),
    ("fastapi/middleware/asyncexitstack.py", "__call__", "AsyncExitStackMiddleware"),
    ("starlette/routing.py", "__call__", "routing (router, route match)"),
)
INSIDE_ENDPOINT = (
    ("fastapi/dependencies/utils.py", "solve_dependencies", "dependency resolution"),
    ("fastapi/routing.py", "run_endpoint_function", "endpoint function"),
    ("fastapi/routing.py", "serialize_response", "response validation + serialisation"),
)


def print_layers(path: str) -> None:
    import pstats

    stats: dict[Any, Any] = pstats.Stats(path).stats  # type: ignore[attr-defined]

    def inclusive(suffix: str, function: str) -> float | None:
        # The outermost call of that name in that file (recursion is counted once).
        found = [
            cumulative
            for (file, _, name), (_, _, _, cumulative, _) in stats.items()
            if file.endswith(suffix) and name == function
        ]
        return max(found) if found else None

    present = [(label, t) for s, f, label in LAYERS if (t := inclusive(s, f)) is not None]
    total = present[0][1]
    print(f"{'layer':<48} {'share':>7}")
    for (label, here), (_, inner) in zip(present, [*present[1:], (None, 0.0)], strict=True):
        print(f"{label:<48} {100 * (here - inner) / total:6.1f}%")
    for suffix, function, label in INSIDE_ENDPOINT:
        here = inclusive(suffix, function)
        if here is not None:
            print(f"  of which {label:<38} {100 * here / total:6.1f}%")


# Self time (each function's own CPU, which coroutines do not blur as they do inclusive
# time), grouped by the layer it belongs to; a builtin is charged to its callers' layers.
_ROUTING_FUNCTIONS = frozenset(
    (
        "_match",
        "matches",
        "_get_routes_version",
        "_restore_fastapi_scope_key",
        "_get_fastapi_scope",
        "_get_scope_effective_route_context",
        "_get_scope_included_router",
        "effective_candidates",
        "_update_scope",
        "_route_selected",
    )
)
_LAYER_FILES = (  # (a part of the file's path, layer); the first that matches
    ("starlette/routing.py", "routing"),
    ("starlette/_utils.py", "routing"),
    ("fastapi/dependencies", "dependency resolution"),
    ("fastapi/_compat", "dependency resolution"),
    ("/typing.py", "dependency resolution"),
    ("/jwt/", "JWT"),
    ("base64.py", "JWT"),
    ("hmac.py", "JWT"),
    ("keel/core/security", "JWT"),
    ("sqlalchemy/orm", "SQLAlchemy ORM (session, loading)"),
    ("sqlalchemy", "SQLAlchemy Core (statements, compile cache, engine, pool)"),
    ("asyncpg", "asyncpg"),
    ("/limits/", "rate limit"),
    ("keel/core/ratelimit.py", "rate limit"),
    ("keel/core/middleware", "middleware (id, headers, log, metrics, hosts, limits)"),
    ("starlette/middleware", "middleware (id, headers, log, metrics, hosts, limits)"),
    ("fastapi/middleware", "middleware (id, headers, log, metrics, hosts, limits)"),
    ("fastapi/_body_limit", "middleware (id, headers, log, metrics, hosts, limits)"),
    ("fastapi/telemetry", "middleware (id, headers, log, metrics, hosts, limits)"),
    ("keel/core/request_id", "middleware (id, headers, log, metrics, hosts, limits)"),
    ("keel/core/metrics", "middleware (id, headers, log, metrics, hosts, limits)"),
    ("prometheus", "middleware (id, headers, log, metrics, hosts, limits)"),
    ("structlog", "middleware (id, headers, log, metrics, hosts, limits)"),
    ("keel/core/logging", "middleware (id, headers, log, metrics, hosts, limits)"),
    ("pydantic", "validation, serialisation, JSON"),
    ("schemas.py", "validation, serialisation, JSON"),
    ("/json/", "validation, serialisation, JSON"),
    ("cashews", "read cache"),
    ("keel/core/cache", "read cache"),
    ("fastapi/", "FastAPI/Starlette request and response"),
    ("starlette/", "FastAPI/Starlette request and response"),
    ("asyncio", "asyncio, anyio, contextlib"),
    ("anyio", "asyncio, anyio, contextlib"),
    ("contextlib", "asyncio, anyio, contextlib"),
)
_OWN_BUILTINS = ("load_der", "to_json", "validate_python", "'re.Pattern'", "greenlet")


def _layer(file: str, function: str) -> str:
    if file.endswith("fastapi/routing.py") and function in _ROUTING_FUNCTIONS:
        return "routing"
    if "'re.Pattern'" in function:
        return "routing"
    if "greenlet" in function:
        return "SQLAlchemy Core (statements, compile cache, engine, pool)"
    if "load_der" in function:
        return "JWT"
    if "to_json" in function or "validate_python" in function:
        return "validation, serialisation, JSON"
    return next((layer for part, layer in _LAYER_FILES if part in file), "other")


def print_shares(paths: list[str]) -> None:
    """Each profile's self time by layer, as a Markdown table (one column per profile): the
    share, and the profiled µs per request (requests: the calls of `scope_for`; cProfile's
    own overhead is in those µs, so compare them only between profiles)."""
    import collections
    import pstats

    columns = []
    for path in paths:
        shares: collections.Counter[str] = collections.Counter()
        total, requests = 0.0, 1
        stats: dict[Any, Any] = pstats.Stats(path).stats  # type: ignore[attr-defined]
        for (file, _, function), (calls, _, own, _, callers) in stats.items():
            total += own
            if function == "scope_for" and file.endswith("request_cost.py"):
                requests = calls
            if file == "~" and callers and not any(b in function for b in _OWN_BUILTINS):
                weight = sum(caller[2] for caller in callers.values()) or 1.0
                for (caller_file, _, caller_function), caller in callers.items():
                    shares[_layer(caller_file, caller_function)] += own * caller[2] / weight
            else:
                shares[_layer(file, function)] += own
        columns.append((shares, total or 1.0, requests))
    layers = sorted(
        {layer for shares, _, _ in columns for layer in shares},
        key=lambda layer: -columns[0][0][layer],
    )
    print("| layer | " + " | ".join(Path(path).stem for path in paths) + " |")
    print("|---|" + "---:|" * len(paths))
    for layer in layers:
        cells = " | ".join(
            f"{100 * shares[layer] / total:.1f}% ({1e6 * shares[layer] / requests:,.0f})"
            for shares, total, requests in columns
        )
        print(f"| {layer} | {cells} |")
    totals = " | ".join(f"{1e6 * total / requests:,.0f} µs" for _, total, requests in columns)
    print(f"| profiled self time per request | {totals} |")


def paired_rounds(arguments: argparse.Namespace) -> None:
    """Alternate this tree and `--against`'s `src/` (extracted with `git archive`), each a
    fresh process running this script, and print each round's CPU µs and their ratio."""
    import statistics
    import tempfile

    other = Path(tempfile.mkdtemp(prefix="request-cost-"))
    archive = subprocess.run(
        ["git", "archive", arguments.against, "src"], cwd=REPO_ROOT, check=True, capture_output=True
    )
    subprocess.run(["tar", "-x", "-C", str(other)], input=archive.stdout, check=True)
    single = [
        sys.executable,
        __file__,
        "--no-migrate",
        *("--scenario", arguments.scenario),
        *("--path", arguments.path),
        *("--requests", str(arguments.requests)),
        *("--warmup", str(arguments.warmup)),
    ]
    trees = {arguments.against: str(other / "src"), "this tree": str(REPO_ROOT / "src")}
    figures: dict[str, list[float]] = {name: [] for name in trees}
    for round_number in range(arguments.rounds):
        order = list(trees) if round_number % 2 == 0 else list(reversed(trees))
        for name in order:
            environment = {**os.environ, "PYTHONPATH": trees[name]}
            output = subprocess.run(
                single, env=environment, check=True, capture_output=True, text=True
            ).stdout
            figures[name].append(json.loads(output.strip().splitlines()[-1])["cpu_us"])
        base, here = figures[arguments.against][-1], figures["this tree"][-1]
        print(
            f"round {round_number + 1}: {arguments.against} {base:.1f} µs, this tree "
            f"{here:.1f} µs, ratio {here / base:.3f}",
            flush=True,
        )
    ratios = [h / b for h, b in zip(figures["this tree"], figures[arguments.against], strict=True)]
    print(
        f"{arguments.scenario}: median {arguments.against} "
        f"{statistics.median(figures[arguments.against]):.1f} µs, this tree "
        f"{statistics.median(figures['this tree']):.1f} µs, median ratio "
        f"{statistics.median(ratios):.3f}"
    )


def ensure_database(database_url: str, environment: dict[str, str]) -> None:
    run_py = REPO_ROOT / "bench" / "run.py"
    sys.path.insert(0, str(run_py.parent))
    from run import ensure_database as create_if_missing  # bench/run.py's helper

    create_if_missing(database_url)
    subprocess.run(
        [str(REPO_ROOT / ".venv" / "bin" / "keel"), "migrate", "upgrade"],
        cwd=REPO_ROOT,
        env={**os.environ, **environment},
        check=True,
        stdout=subprocess.DEVNULL,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--path", default="/health", help="without --scenario: GET this path")
    parser.add_argument("--scenario", choices=sorted(SCENARIOS), default="")
    parser.add_argument("--against", metavar="COMMIT", help="paired rounds against COMMIT")
    parser.add_argument("--rounds", type=int, default=5, help="with --against")
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--cprofile", metavar="FILE", help="write a cProfile of the loop")
    parser.add_argument("--no-migrate", action="store_true", help="the database is ready")
    parser.add_argument("--layers", metavar="FILE", help="print each layer's share of a profile")
    parser.add_argument(
        "--shares", metavar="FILE", nargs="+", help="self time by layer of cProfiles (a table)"
    )
    arguments = parser.parse_args()
    if arguments.layers:
        print_layers(arguments.layers)
        return
    if arguments.shares:
        print_shares(arguments.shares)
        return
    database_url = os.environ.get("KEEL_BENCH_DATABASE_URL", DEFAULT_DATABASE_URL)
    environment = production_environment(database_url)
    for name in [name for name in os.environ if name.startswith("KEEL_")]:
        del os.environ[name]
    if not arguments.no_migrate:
        ensure_database(database_url, environment)
    if arguments.against:
        paired_rounds(arguments)
        return
    os.environ.update(environment)
    try:
        import uvloop
    except ImportError:
        asyncio.run(measure(arguments))
    else:
        uvloop.run(measure(arguments))


if __name__ == "__main__":
    main()
