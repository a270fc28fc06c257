"""A Keel cluster on loopback: `keel serve` and `keel worker` as real subprocesses.

A pytest plugin (tests/conftest.py lists it): the module-scoped `cluster` and
`cluster_admin` fixtures serve core's cluster tests and each feature's, so a feature's
cluster test lives with the feature and leaves with it. A module adds settings of its own
by overriding `cluster_settings`. Jobs are enqueued and events heard the way core does it
(`JobQueue`, `RedisEventHub` in the test process), so nothing here needs a feature.

Every process is `python -m keel ...` with the test process's environment (minus any KEEL_*
variable) plus the cluster's settings, so coverage measures it (`patch = ["subprocess"]` in
pyproject.toml) and nothing from the developer's shell leaks in. Each one writes JSON log lines
to a file of its own in the cluster's directory (also its working directory, so no `.env` of
the repository is read); failures quote the tails of those files.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from contextlib import ExitStack, asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from keel.core.events import Event, RedisEventHub
from keel.core.jobs.models import FINISHED, Job
from keel.core.jobs.queue import JobQueue
from keel.settings import Settings, load_settings
from tests.factories import UserCreateFactory
from tests.support.accounts import Account, make_admin
from tests.support.databases import POSTGRES_URL, empty_all_tables, opened
from tests.support.network import free_port
from tests.support.redis_server import RedisServer, redis_server

STARTUP_SECONDS = 60.0  # three processes importing Keel under coverage on a loaded 2-CPU box
STOP_SECONDS = 20.0
LOG_TAIL_CHARS = 4000
LOGIN_ACCOUNT_LIMIT = 3
GRACEFUL_SHUTDOWN_SECONDS = 10
CLUSTER_SETTINGS = {
    "environment": "test",
    "jwt_secret": "cluster-test-secret-that-is-long-enough-for-hs256-0123456789",
    "auto_migrate": "false",
    "password_hash_time_cost": "1",
    "password_hash_memory_kib": "1024",
    "job_lease_seconds": "3",
    "job_sweep_seconds": "0.5",
    "rate_limit_default": "100000/minute",
    "rate_limit_login_ip": "100000/minute",
    "rate_limit_register_ip": "100000/minute",
    "rate_limit_refresh_ip": "100000/minute",
    "rate_limit_login_account": f"{LOGIN_ACCOUNT_LIMIT}/minute",  # small on purpose
    "graceful_shutdown_seconds": str(GRACEFUL_SHUTDOWN_SECONDS),
    "log_level": "INFO",
}
EVENT_SECONDS = 30.0  # a job's events after it was enqueued (generous: a loaded CI machine)
RECOVERY_SECONDS = 30.0  # after Redis is back: resubscription, consumer group, sweeper re-send


def keel_environment(settings: Mapping[str, str]) -> dict[str, str]:
    """This process's environment without KEEL_* (and without a Prometheus directory that
    belongs to someone else), plus `settings` as KEEL_* variables."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("KEEL_")}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    env.update({f"KEEL_{name.upper()}": value for name, value in settings.items()})
    return env


class KeelProcess:
    """One `python -m keel <arguments>` subprocess and its log file."""

    def __init__(
        self, name: str, arguments: list[str], env: Mapping[str, str], directory: Path
    ) -> None:
        self.name = name
        self.arguments = arguments
        self.env = dict(env)
        self.directory = directory
        self.log_path = directory / f"{name}.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "keel", *self.arguments],
                env=self.env,
                cwd=self.directory,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    @property
    def popen(self) -> subprocess.Popen[bytes]:
        assert self.process is not None, f"{self.name} was never started"
        return self.process

    @property
    def pid(self) -> int:
        return self.popen.pid

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_records(self) -> list[dict[str, Any]]:
        """The JSON log lines (anything else, e.g. a traceback printed by Python, is skipped)."""
        records = []
        for line in self.log().splitlines():
            if line.startswith("{"):
                try:
                    records.append(json.loads(line))
                except ValueError:
                    continue
        return records

    def describe(self) -> str:
        code = None if self.process is None else self.process.poll()
        pid = None if self.process is None else self.process.pid
        return f"--- {self.name} (pid {pid}, exit code {code}) ---\n" + self.log()[-LOG_TAIL_CHARS:]

    def stop(self) -> int | None:
        """SIGTERM, then SIGKILL if it is still running after STOP_SECONDS; the exit code."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=STOP_SECONDS)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()


class ApiProcess(KeelProcess):
    """`keel serve --workers 1` on a free loopback port."""

    def __init__(self, name: str, env: Mapping[str, str], directory: Path) -> None:
        self.port = free_port()
        super().__init__(
            name, ["serve", "--port", str(self.port), "--workers", "1"], env, directory
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"


@dataclass
class Cluster:
    api1: ApiProcess
    api2: ApiProcess
    worker: KeelProcess
    redis: RedisServer
    database_url: str
    directory: Path
    settings: Mapping[str, str]
    """What every process was started with (as KEEL_* variables), database and Redis included."""

    @property
    def apis(self) -> tuple[ApiProcess, ApiProcess]:
        return self.api1, self.api2

    def peer(self, api: ApiProcess) -> ApiProcess:
        """The other API process: where a test checks that what `api` did is shared."""
        return self.api2 if api is self.api1 else self.api1

    def keel_settings(self) -> Settings:
        """The cluster's settings, for core objects the test process opens on its backends."""
        return load_settings(**self.settings, _env_file=None)

    def logs(self) -> str:
        return "\n".join(p.describe() for p in (self.api1, self.api2, self.worker))


def wait_ready(api: ApiProcess, seconds: float = STARTUP_SECONDS) -> None:
    """Until the API's /ready answers 200 (every backend, Redis and its events included)."""
    deadline = time.monotonic() + seconds
    last = "no answer"
    while True:
        if not api.running():
            pytest.fail(f"{api.name} exited before it was ready:\n{api.describe()}")
        try:
            response = httpx.get(f"{api.url}/ready", timeout=5)
            if response.status_code == 200:
                return
            last = f"{response.status_code} {response.text}"
        except httpx.TransportError as exc:
            last = repr(exc)
        if time.monotonic() > deadline:
            pytest.fail(f"{api.name} not ready after {seconds} s ({last}):\n{api.describe()}")
        time.sleep(0.1)


def wait_worker_ready(worker: KeelProcess, seconds: float = STARTUP_SECONDS) -> None:
    deadline = time.monotonic() + seconds
    while "worker_ready" not in worker.log():
        if not worker.running():
            pytest.fail(f"{worker.name} exited before it was ready:\n{worker.describe()}")
        if time.monotonic() > deadline:
            pytest.fail(f"{worker.name} not ready after {seconds} s:\n{worker.describe()}")
        time.sleep(0.1)


@contextmanager
def keel_cluster(
    directory: Path, *, database_url: str, redis: RedisServer, settings: Mapping[str, str]
) -> Iterator[Cluster]:
    """Two API processes and one worker on `database_url` (already migrated) and `redis`;
    yields once all three are ready, stops every one of them afterwards."""
    every = {**settings, "database_url": database_url, "redis_url": redis.url, "log_json": "true"}
    env = keel_environment(every)
    cluster = Cluster(
        api1=ApiProcess("api1", env, directory),
        api2=ApiProcess("api2", env, directory),
        worker=KeelProcess("worker", ["worker"], env, directory),
        redis=redis,
        database_url=database_url,
        directory=directory,
        settings=every,
    )
    with ExitStack() as stack:
        for process in (cluster.api1, cluster.api2, cluster.worker):
            stack.callback(process.stop)  # stopped in reverse order, each even if one fails
            process.start()  # all three start at once: their imports overlap
        wait_ready(cluster.api1)
        wait_ready(cluster.api2)
        wait_worker_ready(cluster.worker)
        yield cluster


# --- fixtures -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cluster_settings() -> dict[str, str]:
    """The processes' settings; a module overrides this fixture to add its own."""
    return dict(CLUSTER_SETTINGS)


@pytest.fixture(scope="module")
def cluster(
    live_database_url: str,
    tmp_path_factory: pytest.TempPathFactory,
    cluster_settings: dict[str, str],
) -> Iterator[Cluster]:
    """A cluster for the module on the live test database (the one `live_settings` uses),
    emptied after the module as `live_settings` empties it after a test; files on a shared
    directory. Starting three processes under coverage costs seconds: one per module."""
    if not POSTGRES_URL:
        pytest.skip(
            "needs KEEL_TEST_DATABASE_URL (PostgreSQL): several Keel processes share one "
            "database, which SQLite is not made for"
        )
    directory = tmp_path_factory.mktemp("cluster")
    settings = {**cluster_settings, "storage_url": f"file://{directory / 'files'}"}
    try:
        with (
            redis_server(directory) as redis,
            keel_cluster(
                directory, database_url=live_database_url, redis=redis, settings=settings
            ) as running,
        ):
            yield running
    finally:
        asyncio.run(empty_all_tables(live_database_url))


@pytest.fixture(scope="module")
def cluster_admin(cluster: Cluster) -> Account:
    """Signed up and logged in through API 1, made an admin on a committed connection."""
    payload = UserCreateFactory.build().model_dump()
    with httpx.Client(base_url=cluster.api1.url) as http:
        registered = http.post("/api/v1/auth/register", json=payload)
        assert registered.status_code == 201, registered.text
        login = http.post(
            "/api/v1/auth/login", json={"email": payload["email"], "password": payload["password"]}
        )
        assert login.status_code == 200, login.text
    account = Account(
        id=registered.json()["id"],
        email=payload["email"],
        password=payload["password"],
        access_token=login.json()["access_token"],
        refresh_token=login.json()["refresh_token"],
    )

    async def grant() -> None:
        async with opened(cluster.database_url) as database, database.engine.begin() as conn:
            await make_admin(conn, account)

    asyncio.run(grant())
    return account


# --- jobs and events, as core sees them -----------------------------------------------------


async def enqueue_job(cluster: Cluster, kind: str, *, owner_id: str | None) -> str:
    """Enqueue a job of `kind` the way an API process does (committed, then its id sent to
    the stream); a send that fails while Redis is down is left to the sweepers, as there."""
    settings = cluster.keel_settings()
    async with opened(cluster.database_url) as database:
        queue = JobQueue(settings, database, runner=None)
        await queue.start()
        try:
            async with database.transaction() as session:
                owner = None if owner_id is None else uuid.UUID(owner_id)
                job = await queue.enqueue(session, kind, {}, owner_id=owner)
        finally:
            await queue.close()
    return str(job.id)


async def finished_row(cluster: Cluster, job_id: str, seconds: float) -> Job:
    """The job's row once it has an outcome (read from the database, not through an API)."""
    deadline = time.monotonic() + seconds
    async with opened(cluster.database_url) as database:
        while True:
            async with database.sessionmaker() as session:
                row = await session.get(Job, uuid.UUID(job_id))
            assert row is not None, job_id
            if row.status in FINISHED:
                return row
            if time.monotonic() > deadline:
                pytest.fail(
                    f"job {job_id} unfinished after {seconds} s: {row.status}\n{cluster.logs()}"
                )
            await asyncio.sleep(0.1)


@asynccontextmanager
async def heard_events(cluster: Cluster) -> AsyncIterator[asyncio.Queue[dict[str, Any]]]:
    """Every event published on the cluster's channel from now on, as its SPEC message."""
    settings = cluster.keel_settings()
    heard: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    async def hear(event: Event) -> None:
        heard.put_nowait(event.message())

    async with Redis.from_url(cluster.redis.url) as redis:
        hub = RedisEventHub(redis, settings.events_channel)
        hub.subscribe(hear)
        await hub.start()
        try:
            async with asyncio.timeout(10):
                await hub.subscribed.wait()
            yield heard
        finally:
            await hub.close()


async def job_messages(
    cluster: Cluster,
    receive: Callable[[], Awaitable[dict[str, Any]]],
    job_ids: set[str],
    seconds: float,
    where: str,
) -> dict[str, list[dict[str, Any]]]:
    """Messages from `receive` until `job.finished` arrived for every job id; each job's
    messages in order (a WebSocket's, or `heard_events`')."""
    seen: dict[str, list[dict[str, Any]]] = {job_id: [] for job_id in job_ids}
    waiting = set(job_ids)
    try:
        async with asyncio.timeout(seconds):
            while waiting:
                message = await receive()
                if message.get("id") in seen:
                    seen[message["id"]].append(message)
                    if message["type"] == "job.finished":
                        waiting.discard(message["id"])
    except TimeoutError:
        pytest.fail(
            f"no job.finished for {sorted(waiting)} within {seconds} s on {where}; "
            f"seen {seen}\n{cluster.logs()}"
        )
    return seen


# --- readiness -------------------------------------------------------------------------------


async def ready_checks(api: ApiProcess) -> tuple[int, dict[str, str]]:
    async with httpx.AsyncClient(base_url=api.url, timeout=10) as http:
        response = await http.get("/ready")
    body = response.json()
    checks = body["checks"] if response.status_code == 200 else body["error"]["details"]["checks"]
    return response.status_code, checks


async def until_not_ready(cluster: Cluster, api: ApiProcess, seconds: float) -> dict[str, str]:
    deadline = time.monotonic() + seconds
    while True:
        status, checks = await ready_checks(api)
        if status == 503 and checks["redis"] != "ok" and checks["events"] != "ok":
            return checks
        if time.monotonic() > deadline:
            pytest.fail(f"{api.name} /ready still {status} {checks}\n{cluster.logs()}")
        await asyncio.sleep(0.1)


async def until_ready(cluster: Cluster, api: ApiProcess, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while True:
        status, checks = await ready_checks(api)
        if status == 200:
            return
        if time.monotonic() > deadline:
            pytest.fail(f"{api.name} /ready still {status} {checks}\n{cluster.logs()}")
        await asyncio.sleep(0.1)


@asynccontextmanager
async def redis_outage(cluster: Cluster) -> AsyncIterator[None]:
    """Redis stopped under the running cluster until the block ends, then started again on
    the same port, empty (no stream, no consumer group). Inside the block both API processes
    report it on /ready; after it, both are ready again (re-subscribed to the event channel).
    """
    cluster.redis.stop()
    try:
        for api in cluster.apis:
            checks = await until_not_ready(cluster, api, seconds=15)
            assert checks["database"] == "ok", checks
            assert checks["redis"] in {"unavailable", "timeout"}, checks
            assert checks["events"] == "unavailable", checks
        yield
    finally:
        cluster.redis.start()
    for api in cluster.apis:
        await until_ready(cluster, api, seconds=RECOVERY_SECONDS)
