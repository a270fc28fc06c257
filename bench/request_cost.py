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

`/api/v1/users/me` needs PostgreSQL: the database (`KEEL_BENCH_DATABASE_URL`, default
`keel_bench` on 127.0.0.1) is created and migrated if needed, and one account
(`cost-user@example.com`) is registered on first use and logged in once per run.
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


async def token_for(app: Any, state: dict[str, Any]) -> str:
    json_headers = [(b"content-type", b"application/json")]
    account = json.dumps({"email": EMAIL, "password": PASSWORD, "full_name": "Cost"}).encode()
    status, body = await call(
        app, scope_for("POST", "/api/v1/auth/register", state, json_headers), account
    )
    if status not in (201, 409):
        raise SystemExit(f"register answered {status}: {body!r}")
    credentials = json.dumps({"email": EMAIL, "password": PASSWORD}).encode()
    status, body = await call(
        app, scope_for("POST", "/api/v1/auth/login", state, json_headers), credentials
    )
    if status != 200:
        raise SystemExit(f"login answered {status}: {body!r}")
    return str(json.loads(body)["access_token"])


async def measure(arguments: argparse.Namespace) -> None:
    from keel.main import create_app

    app = create_app()
    async with app.router.lifespan_context(app) as lifespan_state:
        state = dict(lifespan_state or {})
        headers = [(b"user-agent", b"wrk"), (b"accept", b"*/*")]
        if arguments.path != "/health":
            token = await token_for(app, state)
            headers.append((b"authorization", f"Bearer {token}".encode()))
        status, body = await call(app, scope_for("GET", arguments.path, state, headers))
        if status != 200:
            raise SystemExit(f"{arguments.path} answered {status}: {body!r}")
        for _ in range(arguments.warmup):
            await call(app, scope_for("GET", arguments.path, state, headers))
        profiler = cProfile.Profile() if arguments.cprofile else None
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
    parser.add_argument("--path", default="/health")
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--cprofile", metavar="FILE", help="write a cProfile of the loop")
    parser.add_argument("--no-migrate", action="store_true", help="the database is ready")
    parser.add_argument("--layers", metavar="FILE", help="print each layer's share of a profile")
    arguments = parser.parse_args()
    if arguments.layers:
        print_layers(arguments.layers)
        return
    database_url = os.environ.get("KEEL_BENCH_DATABASE_URL", DEFAULT_DATABASE_URL)
    environment = production_environment(database_url)
    for name in [name for name in os.environ if name.startswith("KEEL_")]:
        del os.environ[name]
    if not arguments.no_migrate:
        ensure_database(database_url, environment)
    os.environ.update(environment)
    try:
        import uvloop
    except ImportError:
        asyncio.run(measure(arguments))
    else:
        uvloop.run(measure(arguments))


if __name__ == "__main__":
    main()
