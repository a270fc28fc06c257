"""How long requests wait for a database connection, and how often one is overtaken (issue 12).

Run from the repository root:

    .venv/bin/python bench/pool_wait.py                       # this checkout
    .venv/bin/python bench/pool_wait.py --against main        # and another revision, same run
    .venv/bin/python bench/pool_wait.py --clients 50 --seconds 10 --pool-size 10 --rounds 3

`keel serve` (one worker, production settings as bench/run.py sets them, 127.0.0.1 only) runs
on PostgreSQL through bench/pool_wait_probe.py, which times every pool checkout in the server.
`--clients` clients each send `GET /api/v1/users/me` (one small read: authentication and
its user) in a loop for `--seconds` seconds, after a 2 s warm-up. Reported per revision:
requests answered, how many were 503 and how many lost their connection unanswered, and from
the server's own record of the checkouts, the wait for a connection (p50, p99, max) and
"overtaken": how many times a checkout that asked later got its connection before one that
asked earlier (the total, the worst single request, and how many requests were overtaken at
all). A checkout that opened a new connection (counted apart) waits for the connect, not in
the queue, and is left out of "overtaken". With a first-come-first-served pool it is 0.
`--rounds` repeats both measurements, alternating, so that a busy spell on a shared machine
falls on both alike.

`--against REV` exports that revision's `src/` (`git archive`, no worktree) into a temporary
directory and runs it with this checkout's environment, `PYTHONPATH` pointing at it; the
schema must be the same (it is migrated with this checkout). The database is
`KEEL_BENCH_DATABASE_URL`, default `postgresql+asyncpg://postgres@127.0.0.1:5432/keel_pool_bench`
(created if missing). Results are printed and written to `bench/results/pool_wait.json`.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import io
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx

from run import (
    HOST,
    LOAD_CPU,
    REPO_ROOT,
    RESULTS_DIR,
    VENV_BIN,
    BenchError,
    Server,
    Shared,
    bench_database_url,
    bench_user_bearer,
    ensure_database,
    free_ports,
    keel_environment,
    migrate,
    running_server,
)

WARMUP_SECONDS = 2.0
DROPPED = 0
"""The status counted for a request whose connection broke before an answer."""
DATABASE_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/keel_pool_bench"
"""Its own database, so a run here never meets bench/run.py's rows or its runs."""
PROBE = REPO_ROOT / "bench" / "pool_wait_probe.py"


@dataclass(frozen=True)
class Figures:
    revision: str
    answered: int
    unavailable: int
    dropped: int
    checkouts: int
    timed_out: int
    opened: int
    wait_p50_ms: float
    wait_p99_ms: float
    wait_max_ms: float
    overtaken_total: int
    overtaken_worst: int
    overtaken_requests: int


def overtaking(checkouts: list[tuple[float, float]]) -> list[int]:
    """For each checkout (asked, got), in order of asking: how many that asked later got a
    connection first (an inversion count, O(n log n) by bisection over the later ones)."""
    ordered = sorted(checkouts)
    later_got: list[float] = []
    counts = [0] * len(ordered)
    for index in range(len(ordered) - 1, -1, -1):
        got = ordered[index][1]
        counts[index] = bisect.bisect_left(later_got, got)
        bisect.insort(later_got, got)
    return counts


def figures(revision: str, statuses: Counter[int], records: list[list[Any]]) -> Figures:
    waits = sorted(got - asked for asked, got, *_ in records) or [0.0]
    # A checkout that opens a connection waits for the connect, not in the queue: whoever is
    # handed a returned connection meanwhile passes it without overtaking anyone in line.
    counts = overtaking([(asked, got) for asked, got, _, opened in records if not opened])
    return Figures(
        revision=revision,
        answered=sum(statuses.values()) - statuses[DROPPED],
        unavailable=statuses[503],
        dropped=statuses[DROPPED],
        checkouts=len(records),
        timed_out=sum(1 for _, _, ok, _ in records if not ok),
        opened=sum(1 for *_, opened in records if opened),
        wait_p50_ms=round(statistics.median(waits) * 1000, 2),
        wait_p99_ms=round(waits[min(len(waits) - 1, int(len(waits) * 0.99))] * 1000, 2),
        wait_max_ms=round(waits[-1] * 1000, 2),
        overtaken_total=sum(counts),
        overtaken_worst=max(counts, default=0),
        overtaken_requests=sum(1 for count in counts if count),
    )


async def load(
    server: Server, headers: dict[str, str], clients: int, seconds: float
) -> tuple[Counter[int], tuple[float, float]]:
    """`clients` loops of GET /api/v1/users/me: the statuses of those sent after the warm-up,
    and that window (`time.perf_counter()`, the server's clock too: CLOCK_MONOTONIC)."""
    statuses: Counter[int] = Counter()
    started = time.perf_counter()
    window = (started + WARMUP_SECONDS, started + WARMUP_SECONDS + seconds)
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(
        base_url=server.base_url, headers=headers, limits=limits, timeout=30, trust_env=False
    ) as http:

        async def client() -> None:
            while (now := time.perf_counter()) < window[1]:
                try:
                    status = (await http.get("/api/v1/users/me")).status_code
                except httpx.TransportError:
                    status = DROPPED
                if now >= window[0]:
                    statuses[status] += 1

        await asyncio.gather(*(client() for _ in range(clients)))
    return statuses, window


def export_source(revision: str, into: Path) -> Path:
    """`revision`'s `src/` as files under `into` (what PYTHONPATH needs to import its keel)."""
    archive = subprocess.run(
        ["git", "archive", "--format=tar", revision, "src"],
        cwd=REPO_ROOT,
        capture_output=True,
        check=False,
    )
    if archive.returncode != 0:
        raise BenchError(
            f"git archive {revision} failed: {archive.stderr.decode(errors='replace')}"
        )
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(into, filter="data")
    return into / "src"


def measure(
    revision: str, source: Path | None, shared: Shared, args: argparse.Namespace
) -> Figures:
    (port,) = free_ports(1)
    environment = keel_environment(shared) | {"KEEL_DB_POOL_SIZE": str(args.pool_size)}
    if source is not None:
        environment["PYTHONPATH"] = str(source)
    out = RESULTS_DIR / f"pool_wait-{revision.replace('/', '_')}-checkouts.json"
    out.unlink(missing_ok=True)
    command = [str(VENV_BIN / "python"), str(PROBE), str(out), "serve"]
    command += ["--host", HOST, "--port", str(port), "--workers", "1"]
    with running_server(f"pool_wait-{revision}", command, environment, port) as server:
        headers = dict(bench_user_bearer(server))
        statuses, (start, end) = asyncio.run(load(server, headers, args.clients, args.seconds))
    records = [r for r in json.loads(out.read_text()) if start <= r[0] < end]
    return figures(revision, statuses, records)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--pool-size", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--against", help="another git revision to measure in the same run")
    args = parser.parse_args()
    if (os.cpu_count() or 1) >= 2:
        os.sched_setaffinity(0, {int(LOAD_CPU)})  # the server is pinned to the other CPU
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("KEEL_BENCH_DATABASE_URL", DATABASE_URL)  # what run.py's helpers read
    database_url = bench_database_url()
    ensure_database(database_url)
    shared = Shared.for_run(database_url)
    migrate(keel_environment(shared))
    results: list[Figures] = []
    with tempfile.TemporaryDirectory() as directory:
        source = export_source(args.against, Path(directory)) if args.against else None
        for _ in range(args.rounds):  # alternating, so a busy spell hits both alike
            results.append(measure("this checkout", None, shared, args))
            print(json.dumps(asdict(results[-1])), flush=True)
            if args.against:
                results.append(measure(args.against, source, shared, args))
                print(json.dumps(asdict(results[-1])), flush=True)
    summary = {"settings": vars(args), "results": [asdict(result) for result in results]}
    (RESULTS_DIR / "pool_wait.json").write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    try:
        main()
    except BenchError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
