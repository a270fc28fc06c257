"""The database goes silent (packets dropped, not refused): how long do requests take?

    PYTHONPATH=. .venv/bin/python bench/db_blackhole.py                  # 1 s bounds
    PYTHONPATH=. .venv/bin/python bench/db_blackhole.py --defaults       # the shipped defaults
    PYTHONPATH=OTHER:OTHER/src .venv/bin/python bench/db_blackhole.py    # another checkout

Needs PostgreSQL: `KEEL_BENCH_DATABASE_URL` (default
postgresql+asyncpg://postgres@127.0.0.1:5432/postgres) names the server; a scratch database
`<name>_blackhole` is (re)created there and migrated. The app runs in-process behind a
loopback TCP proxy (`tests/support/tcp_proxy.py`); a user signs up, the pool is filled, the
proxy starts blackholing, and 15 `GET /api/v1/users/me` plus 15 test-route `SELECT 1` run in
parallel. A request still unanswered after `--cap` seconds is counted as hung. Prints every
request's seconds and status (599 = hung), then whether a fresh request works once the
network is back.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
from pathlib import Path
from time import monotonic

from sqlalchemy.engine import make_url
from tests.support import accounts, routes
from tests.support.app import serve
from tests.support.databases import _recreate_postgres_database, create_probe_table, migrate
from tests.support.tcp_proxy import TcpProxy

from keel.main import create_app
from keel.settings import load_settings

HUNG = 599


async def main(defaults: bool, cap: float) -> None:
    base = os.environ.get(
        "KEEL_BENCH_DATABASE_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
    )
    url = await _recreate_postgres_database(base, f"{make_url(base).database}_blackhole")
    await migrate(url)
    await create_probe_table(url)
    target = make_url(url)
    proxy = TcpProxy(target.host or "127.0.0.1", target.port or 5432)
    await proxy.start()
    bounds = (
        {}
        if defaults
        else {
            "db_connect_timeout_seconds": 1,
            "db_statement_timeout_seconds": 1,
            "db_pool_timeout_seconds": 1,
        }
    )
    settings = load_settings(
        environment="test",
        database_url=target.set(port=proxy.port).render_as_string(hide_password=False),
        auto_migrate=False,
        storage_url="memory://",
        rate_limit_enabled=False,
        password_hash_time_cost=1,
        password_hash_memory_kib=1024,
        db_pool_size=5,
        db_max_overflow=5,
        _env_file=Path(tempfile.mkdtemp()) / "none.env",
        **bounds,
    )
    application = create_app(settings)
    application.include_router(routes.router)
    try:
        async with serve(application) as http:
            account = await accounts.signed_up(http)
            await asyncio.gather(
                *(http.get("/_test/hold", params={"seconds": 0.3}) for _ in range(8))
            )
            proxy.blackhole()

            async def timed(path: str, headers: dict[str, str]) -> tuple[float, int]:
                started = monotonic()
                try:
                    response = await asyncio.wait_for(http.get(path, headers=headers), cap)
                except TimeoutError:
                    return monotonic() - started, HUNG
                return monotonic() - started, response.status_code

            results = await asyncio.gather(
                *(timed("/api/v1/users/me", account.headers) for _ in range(15)),
                *(timed("/_test/db", {}) for _ in range(15)),
            )
            proxy.restore()
            try:
                after = await asyncio.wait_for(
                    http.get("/api/v1/users/me", headers=account.headers), cap
                )
                recovered = str(after.status_code)
            except TimeoutError:
                recovered = "hung"
    finally:
        await proxy.stop()
    print("seconds:", sorted(round(seconds, 2) for seconds, _ in results))
    print("statuses:", sorted(status for _, status in results))
    print(
        f"hung: {sum(status == HUNG for _, status in results)} of {len(results)}; "
        f"longest {max(seconds for seconds, _ in results):.2f} s; after restore: {recovered}"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--defaults", action="store_true", help="the shipped timeouts")
    parser.add_argument("--cap", type=float, default=150.0, help="seconds counted as hung")
    arguments = parser.parse_args()
    asyncio.run(main(arguments.defaults, arguments.cap))
