"""`keel worker` processes on Redis, stopped in the middle of a product import.

A worker killed with SIGKILL leaves its job running with a lease nobody renews; the sweeper
of another worker puts it back on the queue and that worker runs the import again from the
start, which converges on the same products (upserts by SKU). A worker stopped with SIGTERM
gives its job back at once, without counting the attempt.

Real processes and servers: the API runs in-process, the workers are `python -m keel worker`
subprocesses on the same PostgreSQL database, Redis stream and file store. The worker that is
stopped is the same command with its import held inside one batch
(`tests.support.held_worker`), so it is stopped mid-import and mid-batch by construction
instead of by importing enough rows to outlast the signal.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from redis.asyncio import Redis
from sqlalchemy import text

from keel.main import create_app
from keel.settings import Settings
from tests.support.accounts import Account, make_admin, signed_up
from tests.support.app import serve
from tests.support.databases import POSTGRES_URL, REDIS_URL, opened
from tests.support.held_worker import BATCH_VARIABLE, HELD_MARKER

_MISSING = [
    name
    for name, value in (
        ("KEEL_TEST_DATABASE_URL (PostgreSQL)", POSTGRES_URL),
        ("KEEL_TEST_REDIS_URL", REDIS_URL),
    )
    if not value
]
needs_servers = pytest.mark.skipif(
    bool(_MISSING),
    reason=f"needs {' and '.join(_MISSING)}: `keel worker` processes share the database "
    "with the API and take jobs from a Redis stream",
)

ROOT = Path(__file__).resolve().parents[3]

# An import of several batches; the stopped worker holds inside batch HELD_BATCH, after
# HELD_BATCH - 1 batches were committed and with the held one's rows written but uncommitted.
CRASH_ROWS = 2_000
RELEASE_ROWS = 2_000
BATCH_SIZE = 200
HELD_BATCH = 4
FINISH_TIMEOUT = 180.0  # a busy machine: a second worker starts (compiles) slowly too

# Settings a worker must share with the API (and with each other) to run its jobs.
WORKER_SETTINGS = (
    "environment",
    "database_url",
    "redis_url",
    "jwt_secret",
    "storage_url",
    "auto_migrate",
    "job_queue_name",
    "job_lease_seconds",
    "job_sweep_seconds",
    "job_max_attempts",
    "import_batch_size",
    "import_max_errors",
    "cache_key_prefix",
    "rate_limit_key_prefix",
)


def product_csv(rows: int) -> bytes:
    lines = ["sku,name,description,price,currency,stock,is_active"]
    lines.extend(
        f"SKU-{i:06d},Product {i},Imported product number {i},{100 + i},EUR,{i % 50},true"
        for i in range(rows)
    )
    return ("\n".join(lines) + "\n").encode()


def worker_environment(settings: Settings) -> dict[str, str]:
    """The process environment minus any KEEL_* variable, plus the settings as KEEL_*."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("KEEL_")}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    for name in WORKER_SETTINGS:
        value: Any = getattr(settings, name)
        if value is None:
            continue
        if hasattr(value, "get_secret_value"):
            value = value.get_secret_value()
        if isinstance(value, bool):
            value = "true" if value else "false"
        env[f"KEEL_{name.upper()}"] = str(value)
    env["KEEL_LOG_LEVEL"] = "INFO"
    env["KEEL_LOG_JSON"] = "false"
    return env


class Workers:
    """`keel worker` subprocesses, each logging to its own file; all stopped at the end."""

    def __init__(self, settings: Settings, directory: Path) -> None:
        self.env = worker_environment(settings)
        self.directory = directory
        self.started: list[tuple[subprocess.Popen[bytes], Path]] = []

    def start(self, *, held_at_batch: int | None = None) -> subprocess.Popen[bytes]:
        """A `keel worker`; with `held_at_batch`, one whose import holds inside that batch."""
        log_path = self.directory / f"worker-{len(self.started) + 1}.log"
        module, env = "keel", self.env
        if held_at_batch is not None:
            module = "tests.support.held_worker"
            env = {**env, BATCH_VARIABLE: str(held_at_batch), "PYTHONPATH": str(ROOT)}
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", module, "worker"],
                env=env,
                cwd=self.directory,  # no .env file of the repository is read
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.started.append((process, log_path))
        return process

    def log_of(self, process: subprocess.Popen[bytes]) -> str:
        path = next(p for started, p in self.started if started is process)
        return path.read_text(errors="replace")

    def logs(self) -> str:
        return "\n".join(
            f"--- worker {n} (pid {process.pid}, exit {process.poll()}) ---\n"
            + path.read_text(errors="replace")[-6000:]
            for n, (process, path) in enumerate(self.started, 1)
        )

    async def wait_ready(self, process: subprocess.Popen[bytes], seconds: float = 120) -> None:
        await self.wait_for_log(process, "worker_ready", "ready", seconds)

    async def wait_held(self, process: subprocess.Popen[bytes], seconds: float = 60) -> None:
        """Until the held worker's import is inside its held batch."""
        await self.wait_for_log(process, HELD_MARKER, "holding its import", seconds)

    async def wait_for_log(
        self, process: subprocess.Popen[bytes], marker: str, what: str, seconds: float
    ) -> None:
        deadline = time.monotonic() + seconds
        while True:
            if marker in self.log_of(process):
                return
            if process.poll() is not None:
                pytest.fail(f"keel worker exited early:\n{self.logs()}")
            if time.monotonic() > deadline:
                pytest.fail(f"keel worker not {what} after {seconds} s:\n{self.logs()}")
            await asyncio.sleep(0.05)

    def stop_all(self) -> None:
        for process, _ in self.started:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process, _ in self.started:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


async def exit_code(process: subprocess.Popen[bytes], seconds: float) -> int | None:
    """The process's exit code once it exits, or None if it still runs after `seconds`."""
    deadline = time.monotonic() + seconds
    while True:
        code = process.poll()
        if code is not None or time.monotonic() > deadline:
            return code
        await asyncio.sleep(0.05)


@pytest.fixture
async def redis_settings(live_settings: Settings, tmp_path: Path) -> AsyncIterator[Settings]:
    """Live PostgreSQL settings with jobs on Redis under keys of this test only, and files on
    disk (a memory store would not be shared with the worker processes)."""
    assert REDIS_URL is not None
    prefix = f"keel-test-{uuid.uuid4().hex}"
    yield live_settings.model_copy(
        update={
            "redis_url": SecretStr(REDIS_URL),
            "job_queue_name": f"{prefix}:jobs",
            "job_lease_seconds": 2.0,
            "job_sweep_seconds": 0.5,
            "import_batch_size": BATCH_SIZE,
            "cache_key_prefix": prefix,
            "rate_limit_key_prefix": prefix,
            "storage_url": f"file://{tmp_path / 'files'}",
        }
    )
    redis = Redis.from_url(REDIS_URL)
    try:
        keys = [key async for key in redis.scan_iter(match=f"*{prefix}*")]
        if keys:
            await redis.delete(*keys)
    finally:
        await redis.aclose()


async def signed_up_admin(http: httpx.AsyncClient, settings: Settings) -> Account:
    account = await signed_up(http)
    async with opened(settings.database_url) as database, database.engine.begin() as connection:
        await make_admin(connection, account)
    return account


async def start_import(http: httpx.AsyncClient, admin: Account, rows: int) -> str:
    response = await http.post(
        "/api/v1/imports/products",
        headers=admin.headers,
        files={"file": ("products.csv", product_csv(rows), "text/csv")},
    )
    assert response.status_code == 202, response.text
    job = response.json()
    assert response.headers["location"] == f"/api/v1/jobs/{job['id']}"
    assert job["status"] == "queued"
    return str(job["id"])


async def read_job(http: httpx.AsyncClient, admin: Account, job_id: str) -> dict[str, Any]:
    response = await http.get(f"/api/v1/jobs/{job_id}", headers=admin.headers)
    assert response.status_code == 200, response.text
    job: dict[str, Any] = response.json()
    return job


async def wait_for_job(
    http: httpx.AsyncClient,
    admin: Account,
    job_id: str,
    condition: Callable[[dict[str, Any]], bool],
    workers: Workers,
    *,
    seconds: float,
    what: str,
) -> dict[str, Any]:
    """Poll the job through the API until `condition` holds; fail with the workers' logs."""
    deadline = time.monotonic() + seconds
    while True:
        job = await read_job(http, admin, job_id)
        if condition(job):
            return job
        if time.monotonic() > deadline:
            pytest.fail(f"no {what} after {seconds} s; the job is {job}\n{workers.logs()}")
        await asyncio.sleep(0.05)


async def product_counts(settings: Settings) -> tuple[int, int]:
    async with opened(settings.database_url) as database, database.engine.connect() as connection:
        row = (
            await connection.execute(text("SELECT count(*), count(DISTINCT sku) FROM products"))
        ).one()
    return int(row[0]), int(row[1])


async def no_open_transactions(settings: Settings, seconds: float = 10) -> None:
    """Wait until no other session of the database is inside a transaction (PostgreSQL
    notices a killed client's closed connection and rolls its transaction back)."""
    query = text(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
        "AND pid <> pg_backend_pid() AND xact_start IS NOT NULL"
    )
    deadline = time.monotonic() + seconds
    async with opened(settings.database_url) as database:
        while True:
            async with database.engine.connect() as connection:
                open_transactions = await connection.scalar(query)
            if not open_transactions:
                return
            if time.monotonic() > deadline:
                pytest.fail(f"{open_transactions} transactions still open after {seconds} s")
            await asyncio.sleep(0.05)


def running_past(fraction: float) -> Callable[[dict[str, Any]], bool]:
    """The job runs and has read more than `fraction` of its file (and committed batches)."""

    def check(job: dict[str, Any]) -> bool:
        done, total = job["progress"]["done"], job["progress"]["total"]
        return job["status"] == "running" and bool(total) and done > total * fraction

    return check


def finished(job: dict[str, Any]) -> bool:
    return job["status"] in {"succeeded", "failed", "cancelled"}


@needs_servers
async def test_killed_worker_mid_import_is_replaced_and_no_product_is_duplicated(
    redis_settings: Settings, tmp_path: Path
) -> None:
    settings = redis_settings
    workers = Workers(settings, tmp_path)
    try:
        async with serve(create_app(settings)) as http:
            admin = await signed_up_admin(http, settings)
            first = workers.start(held_at_batch=HELD_BATCH)
            await workers.wait_ready(first)
            job_id = await start_import(http, admin, CRASH_ROWS)
            await workers.wait_held(first)
            await wait_for_job(
                http, admin, job_id, running_past(0), workers, seconds=30, what="progress"
            )

            os.kill(first.pid, signal.SIGKILL)
            assert await exit_code(first, seconds=10) == -signal.SIGKILL
            job = await read_job(http, admin, job_id)
            assert job["status"] == "running", job  # and nobody renews its lease any more
            assert job["attempts"] == 1
            assert job["progress"]["done"] < job["progress"]["total"], job
            await no_open_transactions(settings)  # the dead worker's open batch rolled back
            committed, _ = await product_counts(settings)
            assert 0 < committed < CRASH_ROWS, "the worker must die in the middle of the import"
            # Every SKU is new and valid, so whole batches add BATCH_SIZE rows each: the batch
            # the worker was writing (COPY into its staging table, upsert) left nothing.
            assert committed == (HELD_BATCH - 1) * BATCH_SIZE, committed

            workers.start()
            done = await wait_for_job(
                http, admin, job_id, finished, workers, seconds=FINISH_TIMEOUT, what="outcome"
            )
    finally:
        workers.stop_all()

    assert done["status"] == "succeeded", f"{done}\n{workers.logs()}"
    assert done["attempts"] == 2  # the lost one counts: requeued by the sweeper, not released
    assert done["error"] is None
    result = done["result"]
    assert result["failed"] == 0
    assert result["errors"] == []
    # The second run starts over: what the killed worker committed is updated, not duplicated.
    assert result["updated"] == committed
    assert result["created"] == CRASH_ROWS - committed
    assert done["progress"]["done"] == done["progress"]["total"]
    assert await product_counts(settings) == (CRASH_ROWS, CRASH_ROWS)


@needs_servers
async def test_stopped_worker_gives_its_job_back_without_counting_the_attempt(
    redis_settings: Settings, tmp_path: Path
) -> None:
    # A lease far longer than the test may take: the job can only come back by release.
    settings = redis_settings.model_copy(update={"job_lease_seconds": 120.0})
    workers = Workers(settings, tmp_path)
    try:
        async with serve(create_app(settings)) as http:
            admin = await signed_up_admin(http, settings)
            first = workers.start(held_at_batch=HELD_BATCH)
            await workers.wait_ready(first)
            job_id = await start_import(http, admin, RELEASE_ROWS)
            await workers.wait_held(first)
            await wait_for_job(
                http, admin, job_id, running_past(0), workers, seconds=30, what="progress"
            )

            first.send_signal(signal.SIGTERM)
            assert await exit_code(first, seconds=15) == 0, workers.logs()
            assert "job_released" in workers.log_of(first), workers.logs()
            await no_open_transactions(settings)
            # The batch it was writing rolled back: only the batches before it were committed.
            assert await product_counts(settings) == ((HELD_BATCH - 1) * BATCH_SIZE,) * 2
            # No process sweeps now (the API only enqueues): the worker gave the job back.
            job = await read_job(http, admin, job_id)
            assert job["status"] == "queued", job
            assert job["attempts"] == 0, job
            assert job["finished_at"] is None

            workers.start()
            done = await wait_for_job(
                http, admin, job_id, finished, workers, seconds=FINISH_TIMEOUT, what="outcome"
            )
    finally:
        workers.stop_all()

    assert done["status"] == "succeeded", f"{done}\n{workers.logs()}"
    assert done["attempts"] == 1
    assert done["result"]["failed"] == 0
    assert done["result"]["created"] + done["result"]["updated"] == RELEASE_ROWS
    assert done["result"]["updated"] == (HELD_BATCH - 1) * BATCH_SIZE  # committed before
    assert await product_counts(settings) == (RELEASE_ROWS, RELEASE_ROWS)


def test_worker_without_redis_refuses_to_start(tmp_path: Path) -> None:
    env = {name: value for name, value in os.environ.items() if not name.startswith("KEEL_")}
    env["KEEL_DATABASE_URL"] = f"sqlite+aiosqlite:///{tmp_path / 'worker.db'}"
    env["COLUMNS"] = "200"  # one line per message, however rich wraps
    completed = subprocess.run(
        [sys.executable, "-m", "keel", "worker"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert completed.returncode == 2, completed
    assert "KEEL_REDIS_URL" in completed.stderr, completed
