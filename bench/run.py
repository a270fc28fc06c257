"""Benchmark Keel against a bare FastAPI app with wrk.

Run from the repository root:

    .venv/bin/python bench/run.py [--duration 10] [--connections 50] [--rounds 3] [--only health]

Keel runs exactly as it would in production (`keel serve`, production settings, PostgreSQL,
one worker); the baseline is `bench/baseline_app.py` under plain uvicorn with one worker, on
the same database and with the same JWT secret, in a virtual environment of its own
(`bench/.venv-baseline`, created with uv from `bench/baseline/requirements.txt`), so a slower
release in Keel's own dependencies shows up as a gap instead of slowing both alike. Each
scenario sends the same request to both, one server at a time, so the ratio of their
throughputs is the price of Keel's middleware stack, wiring and dependency versions on that
request. Results are printed and written to
`bench/results/latest.json`. See `bench/README.md`.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import importlib
import json
import os
import platform
import re
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from types import FrameType
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import httpx
from sqlalchemy.engine import URL, make_url

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
RESULTS_DIR = BENCH_DIR / "results"
FEATURES_DIR = BENCH_DIR / "features"
VENV_BIN = Path(sys.prefix) / "bin"

# The ceiling's own environment: the versions the peers ship (issue 12), never Keel's lock.
BASELINE_REQUIREMENTS = BENCH_DIR / "baseline" / "requirements.txt"
BASELINE_VENV = BENCH_DIR / ".venv-baseline"

HOST = "127.0.0.1"
DEFAULT_DATABASE_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/keel_bench"
WRK_THREADS = 1
WARMUP_SECONDS = 2
DEFAULT_ROUNDS = 3
# On a machine with two or more CPUs the server under test gets CPU 0 and wrk gets CPU 1, so
# the load generator does not steal cycles from the server it measures (taskset, util-linux).
SERVER_CPU = "0"
LOAD_CPU = "1"
READY_TIMEOUT_SECONDS = 120.0  # a busy 2-CPU machine has taken over a minute to start Keel
STOP_TIMEOUT_SECONDS = 10.0
BUSY_THRESHOLD = 0.10
# The packages whose versions make up "the stack"; recorded for both servers in every result.
STACK_PACKAGES = (
    "fastapi",
    "starlette",
    "pydantic",
    "pydantic-core",
    "uvicorn",
    "uvloop",
    "httptools",
    "asyncpg",
    "pyjwt",
)
JWT_ISSUER = "keel"  # Keel's defaults, set explicitly so both servers are given the same rules
JWT_AUDIENCE = "keel-api"
# Keel's longest allowed access-token lifetime. Tokens are issued per scenario, just before it
# is measured, so a scenario must finish within it (see `scenario_seconds`).
ACCESS_TOKEN_MINUTES = 30
TOKEN_MARGIN_SECONDS = 120
# Keel's global per-client limit (300/minute by default) would answer 429 after the first
# 300 requests from wrk's single address. A limit no run can reach keeps the limiter on the
# path of every request, so its cost is still measured, without it ever refusing one.
UNREACHABLE_RATE_LIMIT = "100000000/minute"
# The account users_me logs in as. It lives in the bench database only and is registered by
# the first run; later runs log in to it again.
BENCH_USER_EMAIL = "bench-user@example.com"
BENCH_USER_PASSWORD = "keel-bench-password"  # noqa: S105 - a throwaway bench account
BENCH_USER_NAME = "Bench User"


class BenchError(Exception):
    """A failure that makes the figures meaningless; reported as one message, exit status 2."""


@dataclass(frozen=True)
class Server:
    """A server under test, reachable on the loopback interface only."""

    name: str
    base_url: str
    pid: int | None = None  # the server's process (for benchmarks that sample its memory)


# --- scenarios ------------------------------------------------------------------------------

Setup = Callable[[Server], Mapping[str, str]]
"""Prepares a scenario against the running Keel and returns the headers to send to both."""


def no_setup(keel: Server) -> Mapping[str, str]:
    """For requests that need nothing but the path."""
    return {}


def bench_user_bearer(keel: Server) -> Mapping[str, str]:
    """Log the bench user in through Keel's own API and return its bearer token header.

    Going through the API (rather than writing rows and signing a token here) means the token,
    its session row and the user's roles are exactly what a real client would hold.
    """
    register(keel, BENCH_USER_EMAIL, BENCH_USER_NAME)
    return bearer(login(keel, BENCH_USER_EMAIL))


def keel_client(keel: Server, headers: Mapping[str, str] | None = None) -> httpx.Client:
    """A client for setup calls to Keel; ignores proxy variables, since Keel is on loopback."""
    return httpx.Client(
        base_url=keel.base_url, headers=dict(headers or {}), timeout=30.0, trust_env=False
    )


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def register(keel: Server, email: str, full_name: str) -> None:
    """Register a bench account on first use; a 409 means an earlier run already did."""
    account = {"email": email, "password": BENCH_USER_PASSWORD, "full_name": full_name}
    with keel_client(keel) as client:
        registered = client.post("/api/v1/auth/register", json=account)
    if registered.status_code not in (201, 409):
        raise BenchError(f"registering {email} failed: {_describe(registered)}")
    asyncio.run(_mark_verified(email))


def login(keel: Server, email: str) -> str:
    """An access token for a bench account (all share one password), through Keel's login."""
    with keel_client(keel) as client:
        response = client.post(
            "/api/v1/auth/login", json={"email": email, "password": BENCH_USER_PASSWORD}
        )
    if response.status_code != 200:
        raise BenchError(f"logging in {email} failed: {_describe(response)}")
    return str(response.json()["access_token"])


async def _promote_to_admin(email: str) -> None:
    """Give `email` the admin role: a step Keel's API cannot do for us."""
    await _execute(
        "UPDATE user_roles SET role = 'admin' "
        "WHERE user_id = (SELECT id FROM users WHERE email = $1)",
        email,
    )


async def _mark_verified(email: str) -> None:
    """Confirm `email` as the emailed link would: production refuses orders from an
    unverified address (`KEEL_REQUIRE_VERIFIED_EMAIL`), and the bench reads no mail."""
    await _execute("UPDATE users SET is_verified = true WHERE email = $1", email)


async def _execute(statement: str, *arguments: object) -> None:
    connection = await asyncpg.connect(asyncpg_dsn(bench_database_url()), timeout=10)
    try:
        await connection.execute(statement, *arguments)
    finally:
        await connection.close()


# How far the tail may stretch: Keel's p99 at most this many times the baseline's, in every
# scenario, under the same load (issue 12).
P99_LIMIT = 1.5


@dataclass(frozen=True)
class Scenario:
    """One comparison: the same request sent to Keel and to the baseline.

    `setup` runs once, after both servers are up and just before the scenario is measured;
    the headers it returns go with every request to both servers (e.g. a fresh bearer token,
    which cannot be known before Keel is running). `target_ratio` is the lowest acceptable
    Keel/baseline throughput ratio, `p99_limit` the highest acceptable Keel/baseline p99.
    """

    name: str
    description: str
    keel_path: str
    baseline_path: str
    target_ratio: float
    setup: Setup = field(default=no_setup)
    p99_limit: float = P99_LIMIT


CORE_SCENARIOS: tuple[Scenario, ...] = (
    Scenario(
        name="health",
        description="GET /health (trivial): no I/O, so the difference is the stack and wiring",
        keel_path="/health",
        baseline_path="/health",
        target_ratio=0.95,
    ),
    Scenario(
        name="users_me",
        description=(
            "GET /api/v1/users/me with a bearer token: JWT decode, one query for the user, "
            "its roles and its live session, JSON response"
        ),
        keel_path="/api/v1/users/me",
        baseline_path="/api/v1/users/me",
        target_ratio=0.70,
        setup=bench_user_bearer,
    ),
)


def scenarios(features: Path = FEATURES_DIR) -> tuple[Scenario, ...]:
    """Core's scenarios, then those of every feature folder present (`features/<name>/
    scenarios.py` defining `SCENARIOS`), in name order: a feature's benchmarks live with it,
    so a project generated without the feature has none of them, and nothing here names one.
    Feature modules import this one as `run`; `bench/` must be on `sys.path` (it is for
    `python bench/<script>.py`)."""
    found = list(CORE_SCENARIOS)
    for path in sorted(features.glob("*/scenarios.py")):
        module = importlib.import_module(f"{features.name}.{path.parent.name}.scenarios")
        declared = getattr(module, "SCENARIOS", None)
        if not isinstance(declared, tuple) or not all(
            isinstance(scenario, Scenario) for scenario in declared
        ):
            raise BenchError(f"{path} must define SCENARIOS, a tuple of run.Scenario")
        found.extend(declared)
    names = [scenario.name for scenario in found]
    if twice := sorted({name for name in names if names.count(name) > 1}):
        raise BenchError(f"scenario names used twice: {', '.join(twice)}")
    return tuple(found)


@dataclass(frozen=True)
class Measurement:
    """What one wrk run reported."""

    requests_per_second: float
    p50_ms: float
    p99_ms: float
    requests: int
    socket_errors: dict[str, int]
    # The server's own CPU time (user + system, all threads) per answered request, in ms. On a
    # busy machine it moves far less than requests/s, which also counts time spent waiting for
    # a CPU; None when the server's process is unknown or /proc is unavailable.
    cpu_ms_per_request: float | None = None


@dataclass(frozen=True)
class Comparison:
    """One scenario's figures for both servers, and the verdict against its targets."""

    scenario: Scenario
    keel: Measurement
    baseline: Measurement

    @property
    def ratio(self) -> float:
        return self.keel.requests_per_second / self.baseline.requests_per_second

    @property
    def p99_ratio(self) -> float:
        return self.keel.p99_ms / self.baseline.p99_ms

    @property
    def throughput_passed(self) -> bool:
        return self.ratio >= self.scenario.target_ratio

    @property
    def p99_passed(self) -> bool:
        return self.p99_ratio <= self.scenario.p99_limit

    @property
    def passed(self) -> bool:
        return self.throughput_passed and self.p99_passed


# --- wrk ------------------------------------------------------------------------------------

_UNIT_TO_MS = {"us": 0.001, "ms": 1.0, "s": 1_000.0, "m": 60_000.0, "h": 3_600_000.0}
# wrk pads a value in whole seconds with a trailing space ("1.34s "), hence the final \s*.
_PERCENTILE = re.compile(
    r"^\s*(?P<pct>\d+(?:\.\d+)?)%\s+(?P<value>[\d.]+)(?P<unit>us|ms|s|m|h)\s*$"
)
_REQUESTS_PER_SECOND = re.compile(r"^Requests/sec:\s+(?P<value>[\d.]+)", re.MULTILINE)
_REQUEST_COUNT = re.compile(r"^\s*(?P<count>\d+) requests in ", re.MULTILINE)
_NON_2XX = re.compile(r"Non-2xx or 3xx responses:\s+(?P<count>\d+)")
_SOCKET_ERRORS = re.compile(
    r"Socket errors: connect (?P<connect>\d+), read (?P<read>\d+), "
    r"write (?P<write>\d+), timeout (?P<timeout>\d+)"
)


def ensure_wrk() -> str:
    """Return wrk's path, installing it with apt-get first if needed.

    Installing on demand keeps a fresh machine to one command; failing loudly (rather than
    falling back to a Python load generator) keeps figures comparable between runs.
    """
    found = shutil.which("wrk")
    if found:
        return found
    if os.geteuid() != 0:
        raise BenchError("wrk is not installed; install it as root: apt-get install -y wrk")
    print("wrk not found; installing it with apt-get ...", file=sys.stderr)
    install = _apt_get("install", "-y", "wrk")
    if install.returncode != 0:
        _apt_get("update")
        install = _apt_get("install", "-y", "wrk")
    found = shutil.which("wrk")
    if install.returncode != 0 or not found:
        raise BenchError(f"could not install wrk with apt-get:\n{_tail(install.stdout)}")
    return found


def _apt_get(*arguments: str) -> subprocess.CompletedProcess[str]:
    """Run apt-get non-interactively, capturing its output for the error message."""
    return subprocess.run(
        ["apt-get", *arguments],
        env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        check=False,
    )


def pinned(command: Sequence[str], cpu: str) -> list[str]:
    """`command` restricted to one CPU, when the machine has spare CPUs and taskset."""
    taskset = shutil.which("taskset")
    if taskset is None or (os.cpu_count() or 1) < 2:
        return list(command)
    return [taskset, "-c", cpu, *command]


def run_wrk(
    wrk: str, url: str, *, duration: int, connections: int, headers: Mapping[str, str]
) -> str:
    """Drive `url` for `duration` seconds and return wrk's report."""
    command = [
        *pinned([wrk], LOAD_CPU),
        f"-t{min(WRK_THREADS, connections)}",
        f"-c{connections}",
        f"-d{duration}s",
        "--latency",
    ]
    for name, value in headers.items():
        command += ["-H", f"{name}: {value}"]
    command.append(url)
    completed = subprocess.run(
        command, capture_output=True, text=True, check=False, timeout=duration + 60
    )
    if completed.returncode != 0:
        raise BenchError(f"wrk failed on {url}:\n{completed.stdout}{completed.stderr}")
    return completed.stdout


def parse_wrk(report: str) -> Measurement:
    """Extract throughput and latency percentiles (in ms) from a `wrk --latency` report.

    Non-2xx answers make the run invalid: an error path is usually much cheaper than the
    real one, so counting them would flatter the server.
    """
    non_2xx = _NON_2XX.search(report)
    if non_2xx:
        raise BenchError(f"{non_2xx['count']} responses were not 2xx/3xx:\n{report}")
    rps = _REQUESTS_PER_SECOND.search(report)
    count = _REQUEST_COUNT.search(report)
    percentiles = {
        float(match["pct"]): float(match["value"]) * _UNIT_TO_MS[match["unit"]]
        for line in report.splitlines()
        if (match := _PERCENTILE.match(line))
    }
    if rps is None or count is None or 50.0 not in percentiles or 99.0 not in percentiles:
        raise BenchError(f"could not parse wrk's report:\n{report}")
    if int(count["count"]) == 0:
        raise BenchError(f"no request was answered (server too slow, or CPUs too busy):\n{report}")
    errors = _SOCKET_ERRORS.search(report)
    return Measurement(
        requests_per_second=float(rps["value"]),
        p50_ms=percentiles[50.0],
        p99_ms=percentiles[99.0],
        requests=int(count["count"]),
        socket_errors={k: int(v) for k, v in errors.groupdict().items()} if errors else {},
    )


# --- servers --------------------------------------------------------------------------------


def free_ports(count: int) -> list[int]:
    """Ask the OS for distinct free loopback ports (all held open until all are chosen)."""
    with ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in sockets:
            sock.bind((HOST, 0))
        return [sock.getsockname()[1] for sock in sockets]


def clean_environment() -> dict[str, str]:
    """The caller's environment without KEEL_* variables, so a developer's settings don't leak."""
    return {name: value for name, value in os.environ.items() if not name.startswith("KEEL_")}


@dataclass(frozen=True)
class Shared:
    """What both servers must agree on to answer the same token the same way."""

    database_url: str
    jwt_secret: str

    @classmethod
    def for_run(cls, database_url: str) -> Shared:
        """A fresh secret per run: tokens from earlier runs are never accepted."""
        return cls(database_url=database_url, jwt_secret=secrets.token_hex(32))


def keel_environment(shared: Shared) -> dict[str, str]:
    """Production settings (the configuration whose cost we want to know), minus two limits.

    The rate limit is raised out of reach (see UNREACHABLE_RATE_LIMIT) and access tokens get
    Keel's longest lifetime, so one login lasts a whole scenario.
    """
    return {
        **clean_environment(),
        "KEEL_ENVIRONMENT": "production",
        "KEEL_DATABASE_URL": shared.database_url,
        "KEEL_JWT_SECRET": shared.jwt_secret,
        "KEEL_JWT_ISSUER": JWT_ISSUER,
        "KEEL_JWT_AUDIENCE": JWT_AUDIENCE,
        "KEEL_ACCESS_TOKEN_MINUTES": str(ACCESS_TOKEN_MINUTES),
        "KEEL_RATE_LIMIT_DEFAULT": UNREACHABLE_RATE_LIMIT,
        "KEEL_ALLOWED_HOSTS": "127.0.0.1,localhost",
        # Production refuses the sandbox gateway; no scenario pays, so nothing listens here.
        "KEEL_PAYMENT_GATEWAY": "http",
        "KEEL_PAYMENT_GATEWAY_URL": "http://127.0.0.1:9",
        "KEEL_LOG_LEVEL": "WARNING",
    }


def baseline_environment(shared: Shared) -> dict[str, str]:
    """The same database and token rules as Keel, in the variables baseline_app.py reads."""
    return {
        **clean_environment(),
        "BASELINE_DATABASE_URL": asyncpg_dsn(shared.database_url),
        "BASELINE_JWT_SECRET": shared.jwt_secret,
        "BASELINE_JWT_ISSUER": JWT_ISSUER,
        "BASELINE_JWT_AUDIENCE": JWT_AUDIENCE,
    }


def asyncpg_dsn(database_url: str) -> str:
    """The SQLAlchemy URL Keel takes, as the plain postgresql:// DSN asyncpg takes."""
    url = make_url(database_url).set(drivername="postgresql")
    return url.render_as_string(hide_password=False)


def bench_database_url() -> str:
    """The database both servers (and the setup hooks) use: keel_bench unless overridden."""
    return os.environ.get("KEEL_BENCH_DATABASE_URL", DEFAULT_DATABASE_URL)


def ensure_database(url: str) -> None:
    """Create the bench database if missing; it is Keel's own, away from dev and test data."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "postgresql" or not parsed.database:
        raise BenchError(f"the bench database must be a postgresql+asyncpg:// URL, got {url!r}")
    try:
        asyncio.run(_create_database(parsed))
    except (OSError, asyncpg.PostgresError) as error:
        raise BenchError(f"cannot create database {parsed.database!r}: {error}") from error


async def _create_database(url: URL) -> None:
    connection = await asyncpg.connect(
        host=url.host or HOST,
        port=url.port or 5432,
        user=url.username or "postgres",
        password=url.password,
        database="postgres",
        timeout=10,
    )
    try:
        query = "SELECT 1 FROM pg_database WHERE datname = $1"
        if not await connection.fetchval(query, url.database):
            quoted = '"' + (url.database or "").replace('"', '""') + '"'
            await connection.execute(f"CREATE DATABASE {quoted}")
    except asyncpg.DuplicateDatabaseError:
        pass  # created concurrently by another run: what we wanted
    finally:
        await connection.close()


def migrate(environment: Mapping[str, str]) -> None:
    """Upgrade the schema: production refuses to serve while the database is behind head."""
    completed = subprocess.run(
        [str(VENV_BIN / "keel"), "migrate", "upgrade"],
        cwd=REPO_ROOT,
        env=dict(environment),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        check=False,
    )
    if completed.returncode != 0:
        raise BenchError(f"`keel migrate upgrade` failed:\n{completed.stdout}")


def keel_command(port: int) -> list[str]:
    """Keel as operators run it in production, with one worker to compare like with like."""
    return [str(VENV_BIN / "keel"), "serve", "--host", HOST, "--port", str(port), "--workers", "1"]


def prepare_run() -> tuple[str, Shared]:
    """wrk, the results directory and the migrated bench database, and this run's shared
    secret: what every comparison script needs before it starts a server."""
    wrk = ensure_wrk()
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    database_url = bench_database_url()
    ensure_database(database_url)
    shared = Shared.for_run(database_url)
    migrate(keel_environment(shared))
    return wrk, shared


def find_uv() -> str:
    """uv from Keel's environment (where `pip install uv` puts it), else from PATH."""
    for candidate in (VENV_BIN / "uv", shutil.which("uv")):
        if candidate and Path(candidate).exists():
            return str(candidate)
    raise BenchError(f"uv is needed to build the baseline's environment: {VENV_BIN}/pip install uv")


def ensure_venv(venv: Path, requirements: str) -> Path:
    """A virtual environment holding exactly `requirements` (a compiled, fully pinned list) on
    Keel's Python; return its interpreter.

    Rebuilt only when the requirements change (their digest is kept in the environment), so
    repeated runs start at once; `uv pip sync` removes anything the list does not name.
    """
    python = venv / "bin" / "python"
    stamp = venv / ".requirements.sha256"
    digest = hashlib.sha256(f"{sys.version}\n{requirements}".encode()).hexdigest()
    if python.exists() and _read_text(stamp) == digest:
        return python
    uv = find_uv()
    pinned_file = venv.with_name(venv.name + ".requirements.txt")
    pinned_file.write_text(requirements)
    try:
        for command in (
            [uv, "venv", "--quiet", "--clear", "--python", sys.executable, str(venv)],
            [uv, "pip", "sync", "--quiet", "--python", str(python), str(pinned_file)],
        ):
            completed = subprocess.run(
                command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, check=False
            )
            if completed.returncode != 0:
                raise BenchError(f"{' '.join(command)} failed:\n{_tail(completed.stdout)}")
    finally:
        pinned_file.unlink(missing_ok=True)
    stamp.write_text(digest)
    return python


def compile_requirements(requirements: str) -> str:
    """`requirements` resolved by uv into a fully pinned list for this Python (dependencies
    included, as `uv pip sync` installs only what the list names)."""
    python_version = f"{sys.version_info.major}.{sys.version_info.minor}"
    command = [find_uv(), "pip", "compile", "--quiet", "--no-header"]
    command += ["--python-version", python_version, "-"]
    completed = subprocess.run(
        command, input=requirements, capture_output=True, text=True, check=False
    )
    if completed.returncode != 0:
        raise BenchError(f"cannot resolve {requirements.split()}:\n{completed.stderr}")
    return completed.stdout


def ensure_baseline_venv() -> Path:
    """The ceiling's own environment, from bench/baseline/requirements.txt."""
    return ensure_venv(BASELINE_VENV, BASELINE_REQUIREMENTS.read_text())


def venv_versions(python: Path | str, packages: Sequence[str] = STACK_PACKAGES) -> dict[str, str]:
    """The installed versions of `packages` in the environment of `python`."""
    script = (
        "import json, sys\nfrom importlib import metadata\n"
        "def v(n):\n    try: return metadata.version(n)\n"
        "    except metadata.PackageNotFoundError: return None\n"
        "print(json.dumps({n: v(n) for n in sys.argv[1:]}))"
    )
    completed = subprocess.run(
        [str(python), "-c", script, *packages], capture_output=True, text=True, check=False
    )
    if completed.returncode != 0:
        raise BenchError(f"cannot read package versions from {python}: {completed.stderr}")
    return dict(json.loads(completed.stdout))


def baseline_command(port: int, python: Path | str | None = None) -> list[str]:
    """The bare app under uvicorn with one worker and its default event loop and parser
    (uvloop and httptools), run by `python` (the baseline's own environment by default)."""
    return [
        str(python or BASELINE_VENV / "bin" / "python"),
        "-m",
        "uvicorn",
        "baseline_app:app",
        "--app-dir",
        str(BENCH_DIR),
        "--host",
        HOST,
        "--port",
        str(port),
        "--workers",
        "1",
        "--no-access-log",
        "--log-level",
        "warning",
    ]


@contextmanager
def running_server(
    name: str, command: Sequence[str], environment: Mapping[str, str], port: int
) -> Iterator[Server]:
    """Start a server, wait until /health answers 200, and always stop it afterwards.

    The server gets a session of its own so a Ctrl-C reaches only this script, which then
    stops the server in order instead of racing it; its output goes to bench/results/.
    """
    log_path = RESULTS_DIR / f"{name}-server.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            pinned(command, SERVER_CPU),
            cwd=REPO_ROOT,
            env=dict(environment),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        server = Server(name=name, base_url=f"http://{HOST}:{port}", pid=process.pid)
        wait_until_healthy(process, server, log_path)
        yield server
    finally:
        stop(process)


def wait_until_healthy(process: subprocess.Popen[bytes], server: Server, log_path: Path) -> None:
    """Poll /health so measuring starts only once the app has finished its start-up."""
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
    with httpx.Client(timeout=2.0, trust_env=False) as client:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise BenchError(
                    f"{server.name} exited with status {process.returncode} before answering; "
                    f"its output:\n{_tail(log_path.read_text(errors='replace'))}"
                )
            try:
                if client.get(f"{server.base_url}/health").status_code == 200:
                    return
            except httpx.TransportError:
                pass  # not listening yet
            time.sleep(0.2)
    raise BenchError(
        f"{server.name} did not answer 200 on /health within {READY_TIMEOUT_SECONDS:.0f}s; "
        f"its output:\n{_tail(log_path.read_text(errors='replace'))}"
    )


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM first so the lifespan closes its pools; SIGKILL if it does not exit in time."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=STOP_TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def check_same_answers(
    scenario: Scenario, keel: Server, baseline: Server, headers: Mapping[str, str]
) -> None:
    """Refuse to measure unless both servers answer 2xx with JSON of the same shape.

    wrk would happily time an error, and a baseline that leaves out a field (or answers a
    different question) would make the comparison unfair.
    """
    keel_body = fetch_json(f"{keel.base_url}{scenario.keel_path}", headers)
    baseline_body = fetch_json(f"{baseline.base_url}{scenario.baseline_path}", headers)
    if json_shape(keel_body) != json_shape(baseline_body):
        raise BenchError(
            f"{scenario.name}: keel and baseline answer differently shaped JSON:\n"
            f"  keel:     {json.dumps(keel_body)[:500]}\n"
            f"  baseline: {json.dumps(baseline_body)[:500]}"
        )


def fetch_json(url: str, headers: Mapping[str, str]) -> Any:
    """GET `url` and return its JSON body; BenchError on a non-2xx or non-JSON answer."""
    with httpx.Client(timeout=5.0, trust_env=False) as client:
        response = client.get(url, headers=dict(headers))
    if not response.is_success:
        raise BenchError(f"GET {url} answered {_describe(response)}")
    try:
        return response.json()
    except ValueError:
        raise BenchError(f"GET {url} did not answer JSON: {response.text[:500]}") from None


def json_shape(value: Any) -> Any:
    """The keys and JSON types of `value`, without the values (a list by its first item)."""
    if isinstance(value, dict):
        return {key: json_shape(item) for key, item in value.items()}
    if isinstance(value, list):
        return [json_shape(value[0])] if value else []
    return type(value).__name__


# --- measuring and reporting ----------------------------------------------------------------


def cpu_busy_fraction(seconds: float = 1.0) -> float | None:
    """How busy the CPUs are right now (0-1), from two /proc/stat samples; None off Linux."""

    def sample() -> tuple[int, int] | None:
        fields = _read_text(Path("/proc/stat")).partition("\n")[0].split()[1:]
        if not fields:
            return None
        ticks = [int(value) for value in fields]
        return sum(ticks), ticks[3] + ticks[4]  # total, idle + iowait

    first = sample()
    time.sleep(seconds)
    second = sample()
    if first is None or second is None or second[0] == first[0]:
        return None
    return 1 - (second[1] - first[1]) / (second[0] - first[0])


def warn_if_busy() -> float | None:
    """Warn when other work is running: servers and wrk share the CPUs, so it skews figures."""
    busy = cpu_busy_fraction()
    if busy is not None and busy > BUSY_THRESHOLD:
        print(
            f"warning: CPUs are {busy:.0%} busy before starting; figures will be noisy",
            file=sys.stderr,
        )
    return busy


def measure(
    wrk: str,
    server: Server,
    path: str,
    headers: Mapping[str, str],
    *,
    duration: int,
    connections: int,
) -> Measurement:
    """Warm up (discarded: first requests pay for imports, caches, pool growth), then measure."""
    url = f"{server.base_url}{path}"
    print(f"  {server.name:<8} {url} (warm-up {WARMUP_SECONDS}s, then {duration}s)", flush=True)
    run_wrk(wrk, url, duration=WARMUP_SECONDS, connections=connections, headers=headers)
    cpu_before = process_cpu_seconds(server.pid)
    report = run_wrk(wrk, url, duration=duration, connections=connections, headers=headers)
    cpu_after = process_cpu_seconds(server.pid)
    measurement = parse_wrk(report)
    if cpu_before is None or cpu_after is None:
        return measurement
    cpu_ms = (cpu_after - cpu_before) * 1000 / measurement.requests
    return replace(measurement, cpu_ms_per_request=round(cpu_ms, 4))


def process_cpu_seconds(pid: int | None) -> float | None:
    """User + system CPU seconds used so far by process `pid` (all its threads), from /proc."""
    if pid is None:
        return None
    stat = _read_text(Path(f"/proc/{pid}/stat"))
    if not stat:
        return None
    # Fields after the command name (which may hold spaces, hence the split on ")").
    fields = stat.rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def compare(
    wrk: str, scenario: Scenario, keel: Server, baseline: Server, arguments: argparse.Namespace
) -> Comparison:
    """Set the scenario up, check both answers, then measure the servers in alternate rounds.

    Alternating (rather than all Keel runs, then all baseline runs) makes drift in the
    machine's speed hit both alike; the median run of each server is kept.
    """
    print(f"{scenario.name}: {scenario.description}", flush=True)
    headers = scenario.setup(keel)
    check_same_answers(scenario, keel, baseline, headers)
    targets = ((keel, scenario.keel_path), (baseline, scenario.baseline_path))
    runs: dict[str, list[Measurement]] = {keel.name: [], baseline.name: []}
    for _ in range(arguments.rounds):
        for server, path in targets:
            runs[server.name].append(
                measure(
                    wrk,
                    server,
                    path,
                    headers,
                    duration=arguments.duration,
                    connections=arguments.connections,
                )
            )
    return Comparison(
        scenario=scenario, keel=median(runs[keel.name]), baseline=median(runs[baseline.name])
    )


def paired_ratio(samples: Sequence[Any], reference: Sequence[Any], attribute: str) -> float | None:
    """The median over rounds of `attribute` in `samples` ÷ the same in `reference`, round by
    round: pairing each run with the reference's run of the same round cancels the drift of
    a busy machine's speed between rounds. None when no round has both figures."""
    ratios = [
        getattr(mine, attribute) / getattr(theirs, attribute)
        for mine, theirs in zip(samples, reference, strict=True)
        if getattr(mine, attribute) and getattr(theirs, attribute)
    ]
    return round(statistics.median(ratios), 3) if ratios else None


def guarded(
    produce: Callable[[argparse.Namespace], Any], arguments: argparse.Namespace
) -> tuple[int | None, Any]:
    """(None, what `produce` returned), or the exit status once it failed: 2 when the figures
    could not be produced (the reason printed), 130 when interrupted (servers stopped)."""
    try:
        return None, produce(arguments)
    except BenchError as error:
        print(f"bench: error: {error}", file=sys.stderr)
        return 2, None
    except KeyboardInterrupt:
        print("bench: interrupted; servers stopped", file=sys.stderr)
        return 130, None


def report_main(
    arguments: argparse.Namespace,
    produce: Callable[[argparse.Namespace], dict[str, Any]],
    describe: Callable[[dict[str, Any]], str],
    output: Path | str,
) -> int:
    """The entry point of every script that writes one document: servers stopped on SIGTERM
    or Ctrl-C, the document written to `output` (a `Path` as given, a bare name in
    bench/results/), its summary printed; exit status 2 when the figures could not be
    produced, 130 interrupted."""
    signal.signal(signal.SIGTERM, _interrupt)
    arguments.cpu_busy = warn_if_busy()
    status, document = guarded(produce, arguments)
    if status is not None:
        return status
    path = output if isinstance(output, Path) else RESULTS_DIR / output
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2) + "\n")
    print(describe(document))
    shown = path.relative_to(REPO_ROOT) if path.is_relative_to(REPO_ROOT) else path
    print(f"\nresults written to {shown}")
    return 0


def median(runs: Sequence[Measurement]) -> Measurement:
    """The run with the median throughput (a real run, so its percentiles belong together)."""
    ordered = sorted(runs, key=lambda run: run.requests_per_second)
    return ordered[len(ordered) // 2]


def format_table(comparisons: Sequence[Comparison]) -> str:
    """A plain-text table: one row per server and scenario, then the verdict."""
    lines = [
        f"{'scenario':<17} {'target':<10} {'requests/s':>12} {'p50 ms':>9} {'p99 ms':>9} "
        f"{'CPU ms/req':>10}"
    ]
    for comparison in comparisons:
        name = comparison.scenario.name
        for target, figures in (("keel", comparison.keel), ("baseline", comparison.baseline)):
            lines.append(
                f"{name:<17} {target:<10} {figures.requests_per_second:>12,.1f} "
                f"{figures.p50_ms:>9.2f} {figures.p99_ms:>9.2f} "
                f"{_optional(figures.cpu_ms_per_request):>10}"
            )
        lines.append(
            f"{name:<17} keel/baseline requests/s = {comparison.ratio:.2f} "
            f"(target >= {comparison.scenario.target_ratio:.2f}): "
            f"{_verdict(comparison.throughput_passed)}"
        )
        lines.append(
            f"{name:<17} keel/baseline p99 = {comparison.p99_ratio:.2f} "
            f"(target <= {comparison.scenario.p99_limit:.2f}): "
            f"{_verdict(comparison.p99_passed)}"
        )
    return "\n".join(lines)


def _optional(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _verdict(passed: bool) -> str:
    return "PASS" if passed else "BELOW TARGET"


def machine_description(cpu_busy: float | None) -> dict[str, Any]:
    """Enough about the machine and software to tell whether two result files are comparable."""
    cpu_model = next(
        (
            line.split(":", 1)[1].strip()
            for line in _read_text(Path("/proc/cpuinfo")).splitlines()
            if line.startswith("model name")
        ),
        platform.processor() or "unknown",
    )
    return {
        "cpus": os.cpu_count(),
        "cpu_busy_before_start": None if cpu_busy is None else round(cpu_busy, 3),
        "cpu_model": cpu_model,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "packages": {name: _version(name) for name in STACK_PACKAGES},
        "keel_commit": _git("rev-parse", "--short", "HEAD"),
        "keel_src_uncommitted_changes": bool(_git("status", "--porcelain", "--", "src")),
    }


def write_results(
    comparisons: Sequence[Comparison],
    *,
    duration: int,
    connections: int,
    cpu_busy: float | None,
    path: Path,
    baseline_packages: Mapping[str, str | None] | None = None,
) -> None:
    """Write the figures as JSON so runs can be diffed and tracked over time."""
    document = {
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": " ".join([".venv/bin/python", "bench/run.py", *sys.argv[1:]]),
        "wrk": {
            "threads": min(WRK_THREADS, connections),
            "connections": connections,
            "duration_s": duration,
            "warmup_s": WARMUP_SECONDS,
        },
        "machine": machine_description(cpu_busy),
        "baseline_packages": dict(baseline_packages or {}),
        "scenarios": [
            {
                "name": c.scenario.name,
                "description": c.scenario.description,
                "keel": {"path": c.scenario.keel_path, **vars(c.keel)},
                "baseline": {"path": c.scenario.baseline_path, **vars(c.baseline)},
                "ratio": round(c.ratio, 4),
                "target_ratio": c.scenario.target_ratio,
                "p99_ratio": round(c.p99_ratio, 4),
                "p99_limit": c.scenario.p99_limit,
                "passed": c.passed,
            }
            for c in comparisons
        ],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2) + "\n")


# --- entry point ----------------------------------------------------------------------------


def parse_arguments(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Benchmark Keel against a bare FastAPI app.")
    parser.add_argument("--duration", type=int, default=10, help="seconds per measured run")
    parser.add_argument("--connections", type=int, default=50, help="open HTTP connections")
    parser.add_argument(
        "--rounds",
        type=int,
        default=DEFAULT_ROUNDS,
        help="alternating keel/baseline runs per scenario; the median run of each is reported",
    )
    parser.add_argument(
        "--only",
        action="append",
        choices=[scenario.name for scenario in scenarios()],
        help="run only this scenario (repeatable)",
    )
    arguments = parser.parse_args(argv)
    if min(arguments.duration, arguments.connections, arguments.rounds) < 1:
        parser.error("--duration, --connections and --rounds must be at least 1")
    token_seconds = ACCESS_TOKEN_MINUTES * 60 - TOKEN_MARGIN_SECONDS
    if scenario_seconds(arguments.duration, arguments.rounds) > token_seconds:
        parser.error(
            f"one scenario would run longer than {token_seconds}s, but the access token it "
            f"measures with expires after {ACCESS_TOKEN_MINUTES} minutes; "
            "lower --duration or --rounds"
        )
    return arguments


def scenario_seconds(duration: int, rounds: int) -> int:
    """How long one scenario keeps wrk busy: both servers, each warmed up, in every round."""
    return rounds * 2 * (WARMUP_SECONDS + duration)


def run(arguments: argparse.Namespace) -> list[Comparison]:
    """Start both servers, run every selected scenario against each in turn, stop both."""
    chosen = [s for s in scenarios() if not arguments.only or s.name in arguments.only]
    wrk = ensure_wrk()
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    database_url = bench_database_url()
    ensure_database(database_url)
    shared = Shared.for_run(database_url)
    keel_env = keel_environment(shared)
    migrate(keel_env)
    baseline_python = ensure_baseline_venv()
    arguments.baseline_packages = venv_versions(baseline_python)
    keel_port, baseline_port = free_ports(2)
    with (
        running_server("keel", keel_command(keel_port), keel_env, keel_port) as keel,
        running_server(
            "baseline",
            baseline_command(baseline_port, baseline_python),
            baseline_environment(shared),
            baseline_port,
        ) as baseline,
    ):
        return [compare(wrk, scenario, keel, baseline, arguments) for scenario in chosen]


def main(argv: Sequence[str] | None = None) -> int:
    arguments = parse_arguments(argv)
    signal.signal(signal.SIGTERM, _interrupt)  # unwind through the `finally`s that stop servers
    cpu_busy = warn_if_busy()
    status, comparisons = guarded(run, arguments)
    if status is not None:
        return status
    results_path = RESULTS_DIR / "latest.json"
    write_results(
        comparisons,
        duration=arguments.duration,
        connections=arguments.connections,
        cpu_busy=cpu_busy,
        path=results_path,
        baseline_packages=getattr(arguments, "baseline_packages", None),
    )
    print()
    print(format_table(comparisons))
    print(f"\nresults written to {results_path.relative_to(REPO_ROOT)}")
    return 0


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def _describe(response: httpx.Response) -> str:
    return f"{response.status_code} {response.text[:500]}"


def _tail(text: str, lines: int = 40) -> str:
    return "\n".join(text.splitlines()[-lines:])


def _read_text(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def status_kib(pid: int, name: str) -> int:
    """A `kB` figure (VmRSS, VmHWM) from /proc/<pid>/status."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{name}:"):
            return int(line.split()[1])
    raise BenchError(f"/proc/{pid}/status has no {name}")


def _git(*arguments: str) -> str | None:
    try:
        completed = subprocess.run(
            ["git", *arguments], cwd=REPO_ROOT, capture_output=True, text=True, check=True
        )
    except (OSError, subprocess.CalledProcessError):
        return None
    return completed.stdout.strip()


if __name__ == "__main__":
    sys.modules["run"] = sys.modules[__name__]  # the features' `import run` is this module
    sys.exit(main())
