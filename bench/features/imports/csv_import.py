"""Import a 1,000,000-row product CSV with Keel, against COPY plus the same SQL upsert.

Run from the repository root:

    .venv/bin/python bench/features/imports/csv_import.py [--rows 1000000] [--rounds 3] [--profile]

It writes a product CSV (`sku,name,description,price,currency,stock,is_active`) to a
temporary directory, then, in one run, on the `keel_bench` database (created and migrated
as bench/run.py does it; `KEEL_BENCH_DATABASE_URL` overrides it):

1. times `psql -c "\\copy ... FROM 'FILE' WITH (FORMAT csv, HEADER true)"` into a bare table
   (the same columns as text, integers and a boolean; the SKU as primary key; no other index):
   PostgreSQL's own speed at reading the file, and the rows every import is checked against;
2. in `--rounds` paired rounds, alternating which goes first, with none of the file's SKUs in
   `products` beforehand:
   - the baseline: one asyncpg connection COPYs the file (`copy_to_table`, CSV) into the
     staging table Keel's import uses and runs Keel's own upsert statement from it
     (`keel.features.catalog.repository.CREATE_STAGING_SQL` and `UPSERT_STAGED_SQL`), in one
     transaction; then the same again, every row now an update;
   - `keel import-products FILE`, the import Keel's API job runs (every row created), then
     again (every row an update);
3. times `keel import-products` of a one-row file: the CLI's fixed cost.

It checks that Keel's `products` rows equal the copied rows, reports rows/s for each and the
ratios `baseline seconds / keel seconds` per round (the target: at least 0.8 for the first
import) and `psql copy seconds / keel seconds`, then deletes the bare table and the imported
products. Results are printed and written to `bench/results/csv_import.json`. With
`--profile` it then imports the file once more, into an emptied set of SKUs, under cProfile,
and prints where the time goes. See `bench/README.md`.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import os
import pstats
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped]
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # bench/, for run.py

from keel.features.catalog.repository import (
    CREATE_STAGING_SQL,
    IMPORTED_COLUMNS,
    STAGING_TABLE,
    UPSERT_STAGED_SQL,
)
from run import (
    HOST,
    REPO_ROOT,
    RESULTS_DIR,
    VENV_BIN,
    BenchError,
    _tail,
    asyncpg_dsn,
    bench_database_url,
    clean_environment,
    ensure_database,
    machine_description,
    migrate,
    report_main,
)

DEFAULT_ROWS = 1_000_000
TARGET_RATIO = 0.8  # of COPY plus the same SQL upsert (issue 12, item 6)
DEFAULT_ROUNDS = 3
SKU_PREFIX = "CSVB-"  # every SKU in the file starts with it; no other bench data does
COPY_TABLE = "bench_copy_products"
COLUMNS = ("sku", "name", "description", "price", "currency", "stock", "is_active")
SEED = 20261122
IMPORT_TIMEOUT_SECONDS = 3600
# `keel import-products` ends with "created N, updated N, failed N".
_RESULT_LINE = re.compile(
    r"created (?P<created>\d+), updated (?P<updated>\d+).*failed (?P<failed>\d+)"
)

_ADJECTIVES = ("Sturdy", "Light", "Compact", "Classic", "Modern", "Rugged", "Quiet", "Smart")
_NOUNS = ("kettle", "lamp", "backpack", "chair", "notebook", "speaker", "jacket", "bottle")
_PHRASES = (
    "Made to last",
    "Ships in recycled packaging",
    "Easy to clean, easy to store",
    'The "everyday" favourite',
    "Two-year warranty",
    "Designed in Europe",
    "Fits most setups, no tools needed",
    "",
)
_CURRENCIES = ("EUR", "EUR", "EUR", "USD", "GBP")


# --- the file -------------------------------------------------------------------------------


def write_csv(path: Path, rows: int, *, first: int = 1) -> None:
    """`rows` products with unique SKUs, deterministic (seeded), written with the csv module.

    Prices are integer minor units, `is_active` is `true`/`false`, and some descriptions
    contain commas or quotes, so both importers meet quoted fields.
    """
    rng = random.Random(SEED + first)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(COLUMNS)
        for number in range(first, first + rows):
            adjective, noun = rng.choice(_ADJECTIVES), rng.choice(_NOUNS)
            writer.writerow(
                (
                    f"{SKU_PREFIX}{number:07d}",
                    f"{adjective} {noun} {number:07d}",
                    f"{rng.choice(_PHRASES)}. {adjective} {noun}, model {number % 997}.",
                    rng.randint(99, 99_999),
                    rng.choice(_CURRENCIES),
                    rng.randint(0, 10_000),
                    "true" if rng.random() < 0.9 else "false",
                )
            )


# --- the database ---------------------------------------------------------------------------


async def _sql(database_url: str, *statements: str) -> list[Any]:
    """Run statements on their own connection (outside a transaction: VACUUM needs that)."""
    connection = await asyncpg.connect(asyncpg_dsn(database_url), timeout=10)
    try:
        return [await connection.fetchval(statement) for statement in statements]
    finally:
        await connection.close()


def sql(database_url: str, *statements: str) -> list[Any]:
    try:
        return asyncio.run(_sql(database_url, *statements))
    except (OSError, asyncpg.PostgresError) as error:
        raise BenchError(f"SQL on the bench database failed: {error}") from error


def remove_imported(database_url: str) -> int:
    """Delete the products this benchmark imports (by SKU prefix) and vacuum the table.

    Not `TRUNCATE products CASCADE`: that would also empty `order_items` (it references
    products), and with it the orders bench/run.py's orders_list scenario reads. Only the
    file's own SKUs go, and VACUUM leaves no dead rows for the next import to step over.
    """
    (deleted,) = sql(
        database_url,
        f"WITH gone AS (DELETE FROM products WHERE sku LIKE '{SKU_PREFIX}%' RETURNING 1) "  # noqa: S608 - constants
        "SELECT count(*) FROM gone",
    )
    sql(database_url, "VACUUM (ANALYZE) products")
    return int(deleted)


def psql_command(database_url: str, command: str) -> tuple[list[str], dict[str, str]]:
    """psql running one command on the bench database, and its environment."""
    url = make_url(database_url)
    environment = clean_environment()
    if url.password:
        environment["PGPASSWORD"] = url.password
    return [
        "psql",
        "-X",
        "-q",
        "-v",
        "ON_ERROR_STOP=1",
        "-h",
        url.host or HOST,
        "-p",
        str(url.port or 5432),
        "-U",
        url.username or "postgres",
        "-d",
        url.database or "",
        "-c",
        command,
    ], environment


def timed_copy(database_url: str, path: Path, rows: int) -> float:
    """Seconds for psql to \\copy the file into a fresh bare table; checks the row count."""
    sql(
        database_url,
        f"DROP TABLE IF EXISTS {COPY_TABLE}",
        f"CREATE TABLE {COPY_TABLE} (sku text PRIMARY KEY, name text NOT NULL, "
        "description text NOT NULL, price bigint NOT NULL, currency text NOT NULL, "
        "stock integer NOT NULL, is_active boolean NOT NULL)",
    )
    command, environment = psql_command(
        database_url, f"\\copy {COPY_TABLE} FROM '{path}' WITH (FORMAT csv, HEADER true)"
    )
    started = time.perf_counter()
    completed = subprocess.run(command, env=environment, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if completed.returncode != 0:
        raise BenchError(f"psql \\copy failed:\n{completed.stdout}{completed.stderr}")
    (copied,) = sql(database_url, f"SELECT count(*) FROM {COPY_TABLE}")  # noqa: S608
    if copied != rows:
        raise BenchError(f"psql copied {copied} rows, not {rows}")
    return seconds


@dataclass(frozen=True)
class Baseline:
    copy_seconds: float
    upsert_seconds: float
    created: int

    @property
    def seconds(self) -> float:
        return self.copy_seconds + self.upsert_seconds


async def _staged_baseline(database_url: str, path: Path) -> Baseline:
    connection = await asyncpg.connect(asyncpg_dsn(database_url), timeout=10)
    try:
        started = time.perf_counter()
        async with connection.transaction():
            await connection.execute(CREATE_STAGING_SQL)
            await connection.copy_to_table(
                STAGING_TABLE, source=path, columns=IMPORTED_COLUMNS, format="csv", header=True
            )
            copied = time.perf_counter()
            created = await connection.fetchval(UPSERT_STAGED_SQL)
        finished = time.perf_counter()
    finally:
        await connection.close()
    return Baseline(copied - started, finished - copied, int(created))


def timed_staged_baseline(database_url: str, path: Path, *, created: int, what: str) -> Baseline:
    """COPY of the file into Keel's staging table plus Keel's own upsert statement from it,
    in one transaction on one asyncpg connection: the floor for an importer that writes
    `products` through that table (connecting is not timed)."""
    try:
        baseline = asyncio.run(_staged_baseline(database_url, path))
    except (OSError, asyncpg.PostgresError) as error:
        raise BenchError(f"the COPY + upsert baseline failed: {error}") from error
    if baseline.created != created:
        raise BenchError(f"{what}: the baseline created {baseline.created}, not {created}")
    return baseline


# --- Keel -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class KeelImport:
    seconds: float
    created: int
    updated: int
    failed: int


def keel_cli_environment(database_url: str) -> dict[str, str]:
    """The CLI on the bench database with embedded jobs (no broker, no Redis), quiet logs."""
    return {
        **clean_environment(),
        "KEEL_ENVIRONMENT": "development",
        "KEEL_DATABASE_URL": database_url,
        "KEEL_LOG_LEVEL": "WARNING",
    }


def keel_import(
    environment: Mapping[str, str], path: Path, *, profile: Path | None = None
) -> KeelImport:
    """Run `keel import-products FILE` (optionally under cProfile) and parse its result line."""
    command = [str(VENV_BIN / "keel"), "import-products", str(path)]
    if profile is not None:
        command = [sys.executable, "-m", "cProfile", "-o", str(profile), *command]
    started = time.perf_counter()
    completed = subprocess.run(
        command,
        cwd=REPO_ROOT,
        env=dict(environment),
        capture_output=True,
        text=True,
        timeout=IMPORT_TIMEOUT_SECONDS,
    )
    seconds = time.perf_counter() - started
    output = completed.stdout + completed.stderr
    found = _RESULT_LINE.search(output)
    if completed.returncode != 0 or found is None:
        raise BenchError(
            f"`keel import-products` exited with {completed.returncode}:\n{_tail(output)}"
        )
    return KeelImport(
        seconds=seconds,
        created=int(found["created"]),
        updated=int(found["updated"]),
        failed=int(found["failed"]),
    )


def expect(result: KeelImport, *, created: int, updated: int, what: str) -> None:
    if (result.created, result.updated, result.failed) != (created, updated, 0):
        raise BenchError(
            f"{what}: Keel reported created {result.created}, updated {result.updated}, "
            f"failed {result.failed}; expected created {created}, updated {updated}, failed 0"
        )


def check_products_match_copy(database_url: str, rows: int) -> None:
    """Every row of the file is in `products` exactly as COPY read it."""
    (matching,) = sql(
        database_url,
        f"SELECT count(*) FROM {COPY_TABLE} c JOIN products p ON p.sku = c.sku "  # noqa: S608
        "WHERE p.name = c.name AND p.description = c.description "
        "AND p.price_amount = c.price AND p.currency = c.currency AND p.stock = c.stock "
        "AND p.is_active = c.is_active",
    )
    if matching != rows:
        raise BenchError(f"only {matching} of {rows} imported products equal the copied rows")


def print_profile(path: Path, limit: int = 30) -> None:
    stats = pstats.Stats(str(path))
    stats.strip_dirs()
    for order in ("tottime", "cumulative"):
        print(f"\n--- cProfile of keel import-products, top {limit} by {order} ---")
        stats.sort_stats(order).print_stats(limit)


# --- running --------------------------------------------------------------------------------


def rate(rows: int, seconds: float) -> float:
    return round(rows / seconds, 1)


def run(arguments: argparse.Namespace) -> dict[str, Any]:
    rows = arguments.rows
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    database_url = bench_database_url()
    ensure_database(database_url)
    environment = keel_cli_environment(database_url)
    if arguments.batch_size is not None:
        environment["KEEL_IMPORT_BATCH_SIZE"] = str(arguments.batch_size)
    migrate(environment)
    with tempfile.TemporaryDirectory(prefix="keel-bench-csv-") as temporary:
        scratch = Path(temporary)
        path = scratch / "products.csv"
        started = time.perf_counter()
        write_csv(path, rows)
        generated = time.perf_counter() - started
        size = path.stat().st_size
        print(f"wrote {rows:,} rows ({size / 2**20:,.1f} MiB) in {generated:.1f}s", flush=True)
        tiny = scratch / "one-row.csv"
        write_csv(tiny, 1, first=rows + 1)
        try:
            removed_before = remove_imported(database_url)
            (other_products,) = sql(database_url, "SELECT count(*) FROM products")
            print("psql \\copy into a bare table ...", flush=True)
            copy_seconds = timed_copy(database_url, path, rows)
            print(f"  {copy_seconds:.2f}s", flush=True)
            rounds = []
            for number in range(1, arguments.rounds + 1):
                order = ("baseline", "keel") if number % 2 else ("keel", "baseline")
                measured: dict[str, Any] = {"order": " then ".join(order)}
                for side in order:
                    remove_imported(database_url)
                    if side == "baseline":
                        new = timed_staged_baseline(
                            database_url, path, created=rows, what="the baseline (new)"
                        )
                        again = timed_staged_baseline(
                            database_url, path, created=0, what="the baseline (updates)"
                        )
                        measured["baseline_new"], measured["baseline_updates"] = new, again
                    else:
                        first = keel_import(environment, path)
                        expect(first, created=rows, updated=0, what="the first import")
                        check_products_match_copy(database_url, rows)
                        second = keel_import(environment, path)
                        expect(second, created=0, updated=rows, what="the second import")
                        measured["keel_new"], measured["keel_updates"] = first, second
                    print(f"  round {number}, {side}: done", flush=True)
                rounds.append(measured)
                print(f"  round {number}: {round_summary(measured)}", flush=True)
            check_products_match_copy(database_url, rows)
            overhead = keel_import(environment, tiny)
            expect(overhead, created=1, updated=0, what="the one-row import")
            profile = None
            if arguments.profile:
                remove_imported(database_url)
                profile = RESULTS_DIR / "csv_import.prof"
                print("keel import-products under cProfile (all new) ...", flush=True)
                profiled = keel_import(environment, path, profile=profile)
                expect(profiled, created=rows, updated=0, what="the profiled import")
                print_profile(profile)
        finally:
            sql(database_url, f"DROP TABLE IF EXISTS {COPY_TABLE}")
            removed_after = remove_imported(database_url)
    ratios_new = [r["baseline_new"].seconds / r["keel_new"].seconds for r in rounds]
    ratios_updates = [r["baseline_updates"].seconds / r["keel_updates"].seconds for r in rounds]
    fixed = overhead.seconds
    ratios_net = [
        r["baseline_new"].seconds / max(r["keel_new"].seconds - fixed, 1e-9) for r in rounds
    ]
    keel_new_s = statistics.median(r["keel_new"].seconds for r in rounds)
    ratio = statistics.median(ratios_new)
    return {
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": " ".join(
            [".venv/bin/python", "bench/features/imports/csv_import.py", *sys.argv[1:]]
        ),
        "rows": rows,
        "rounds": len(rounds),
        "file_bytes": size,
        "file_generation_s": round(generated, 2),
        "products_rows_not_from_the_file": other_products,
        "csv_products_removed_before": removed_before,
        "csv_products_removed_after": removed_after,
        "psql_copy": {
            "seconds": round(copy_seconds, 3),
            "rows_per_second": rate(rows, copy_seconds),
        },
        "per_round": [round_document(r, rows) for r in rounds],
        "median_keel_new_s": round(keel_new_s, 3),
        "median_baseline_new_s": round(
            statistics.median(r["baseline_new"].seconds for r in rounds), 3
        ),
        "keel_one_row_import_s": round(fixed, 3),
        "ratio_baseline_to_keel_new": round(ratio, 4),
        "ratio_baseline_to_keel_new_per_round": [round(x, 4) for x in ratios_new],
        "ratio_baseline_to_keel_updates": round(statistics.median(ratios_updates), 4),
        "ratio_baseline_to_keel_new_without_fixed_cost": round(statistics.median(ratios_net), 4),
        "ratio_psql_copy_to_keel_new": round(copy_seconds / keel_new_s, 4),
        "python_bytecode_cache": "off (PYTHONDONTWRITEBYTECODE)"
        if os.environ.get("PYTHONDONTWRITEBYTECODE")
        else "default",
        "batch_size": arguments.batch_size or 1000,
        "target_ratio": TARGET_RATIO,
        "passed": ratio >= TARGET_RATIO,
        "profile": None if profile is None else str(profile.relative_to(REPO_ROOT)),
        "machine": machine_description(arguments.cpu_busy),
    }


def round_summary(measured: dict[str, Any]) -> str:
    baseline, keel = measured["baseline_new"], measured["keel_new"]
    return (
        f"baseline {baseline.seconds:.2f}s (copy {baseline.copy_seconds:.2f} + upsert "
        f"{baseline.upsert_seconds:.2f}), keel {keel.seconds:.2f}s, "
        f"ratio {baseline.seconds / keel.seconds:.3f}; updates: baseline "
        f"{measured['baseline_updates'].seconds:.2f}s, keel {measured['keel_updates'].seconds:.2f}s"
    )


def round_document(measured: dict[str, Any], rows: int) -> dict[str, Any]:
    document: dict[str, Any] = {"order": measured["order"]}
    for name in ("baseline_new", "baseline_updates"):
        baseline = measured[name]
        document[name] = {
            "copy_s": round(baseline.copy_seconds, 3),
            "upsert_s": round(baseline.upsert_seconds, 3),
            "seconds": round(baseline.seconds, 3),
            "rows_per_second": rate(rows, baseline.seconds),
        }
    for name in ("keel_new", "keel_updates"):
        keel = measured[name]
        document[name] = {
            "seconds": round(keel.seconds, 3),
            "rows_per_second": rate(rows, keel.seconds),
            "created": keel.created,
            "updated": keel.updated,
        }
    return document


def parse_arguments(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Time Keel's CSV import against psql \\copy.")
    parser.add_argument("--rows", type=int, default=DEFAULT_ROWS, help="rows in the CSV")
    parser.add_argument(
        "--rounds", type=int, default=DEFAULT_ROUNDS, help="paired rounds (baseline and Keel)"
    )
    parser.add_argument(
        "--batch-size",
        type=int,
        default=None,
        help="KEEL_IMPORT_BATCH_SIZE for keel import-products (default: Keel's own, 1000)",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="afterwards, import once more under cProfile and print the top functions",
    )
    arguments = parser.parse_args(argv)
    if arguments.rounds < 1:
        parser.error("--rounds must be at least 1")
    if not 1 <= arguments.rows <= 9_999_998:
        parser.error("--rows must be between 1 and 9,999,998 (seven-digit SKUs)")
    return arguments


def format_summary(document: dict[str, Any]) -> str:
    verdict = "PASS" if document["passed"] else "BELOW TARGET"
    return (
        f"median of {document['rounds']} rounds: keel {document['median_keel_new_s']:.2f}s "
        f"(new), baseline COPY + upsert {document['median_baseline_new_s']:.2f}s; "
        f"baseline/keel = {document['ratio_baseline_to_keel_new']:.3f} "
        f"(target >= {TARGET_RATIO}): {verdict}; updates "
        f"{document['ratio_baseline_to_keel_updates']:.3f}; without the CLI's fixed cost "
        f"{document['ratio_baseline_to_keel_new_without_fixed_cost']:.3f}; psql \\copy/keel "
        f"{document['ratio_psql_copy_to_keel_new']:.3f}"
    )


def main(argv: Sequence[str] | None = None) -> int:
    arguments = parse_arguments(argv)
    # A profiled run's timings carry the profiler's overhead: keep them apart.
    output = "csv_import-profiled.json" if arguments.profile else "csv_import.json"
    return report_main(arguments, run, format_summary, output)


if __name__ == "__main__":
    sys.exit(main())
