"""Which package release makes the bare baseline app slower on Keel's locked versions?

Run from the repository root, after `uv sync`:

    .venv/bin/python bench/stack_bisect.py [--rounds 5] [--duration 5] [--only uvloop ...]

The baseline app (`bench/baseline_app.py`) runs in one virtual environment per variant, each
built with uv from the ceiling's pins (`bench/baseline/requirements.in`, the versions the peers
ship) with exactly one package moved to the version Keel's own environment has; plus the
ceiling itself, Keel's whole set, and Keel's set with that one package moved back. All the
servers are started once, each pinned to CPU 0 (wrk on CPU 1), and measured one at a time in
alternating rounds (the order reversed every other round), so a change in the machine's speed
hits every variant alike. Each round's figures are divided by the ceiling's in the same round;
the table shows the median of those ratios, for requests/s and for the server's CPU time per
request (which a busy machine moves less). Traffic goes to 127.0.0.1 only; every server is
stopped at the end. Results go to `bench/results/stack_bisect.json`. See `bench/README.md`.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from collections.abc import Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import run as bench  # bench/ is not a package: imported from its directory

REQUIREMENTS_IN = bench.BENCH_DIR / "baseline" / "requirements.in"
PATHS = {"health": "/health", "products": "/api/v1/products"}
# Connections per server: every variant runs at once, and PostgreSQL's max_connections (100 by
# default) is shared with whatever else uses it. The same for all, so ratios stay fair.
POOL_SIZE = "2"
# The packages to move one at a time, and what has to move with them (a FastAPI release
# requires a Starlette range; pydantic pins its pydantic-core, which uv resolves itself).
SWAPS: dict[str, tuple[str, ...]] = {
    "uvloop": ("uvloop",),
    "httptools": ("httptools",),
    "uvicorn": ("uvicorn",),
    "starlette": ("starlette",),
    "fastapi+starlette": ("fastapi", "starlette"),
    "pydantic": ("pydantic",),
}


@dataclass(frozen=True)
class Variant:
    name: str
    pins: dict[str, str]


def ceiling_pins() -> dict[str, str]:
    """`name==version` lines of requirements.in, as {name: version}."""
    pins: dict[str, str] = {}
    for line in REQUIREMENTS_IN.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if "==" in line:
            name, version = line.split("==", 1)
            pins[name.lower()] = version
    return pins


def keel_pins(names: Sequence[str]) -> dict[str, str]:
    """The versions Keel's environment (this interpreter's) has of `names`."""
    return {name: metadata.version(name) for name in names}


def variants(only: Sequence[str] | None) -> list[Variant]:
    ceiling = ceiling_pins()
    keel = keel_pins(list(ceiling))
    chosen = [name for name in SWAPS if not only or name in only]
    found = [Variant("ceiling", ceiling)]
    for swap in chosen:
        moved = {name: keel[name] for name in SWAPS[swap]}
        found.append(Variant(f"+{swap} {'/'.join(moved.values())}", {**ceiling, **moved}))
    found.append(Variant("keel's set", keel))
    for swap in chosen:
        back = {name: ceiling[name] for name in SWAPS[swap]}
        found.append(Variant(f"keel's set, {swap} {'/'.join(back.values())}", {**keel, **back}))
    return found


def compile_requirements(pins: Mapping[str, str]) -> str:
    """A fully pinned requirements list for `pins` on this Python (uv resolves the rest)."""
    return bench.compile_requirements(
        "".join(f"{name}=={version}\n" for name, version in sorted(pins.items()))
    )


def venv_dir(index: int) -> Path:
    return bench.BENCH_DIR / f".venv-bisect-{index}"


@dataclass(frozen=True)
class Sample:
    requests_per_second: float
    p99_ms: float
    cpu_ms_per_request: float | None


def parse_arguments(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=5, help="seconds per measured run")
    parser.add_argument("--connections", type=int, default=50, help="open HTTP connections")
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds")
    parser.add_argument("--only", action="append", choices=list(SWAPS), help="swap (repeatable)")
    parser.add_argument(
        "--path", action="append", choices=list(PATHS), help="request to measure (repeatable)"
    )
    arguments = parser.parse_args(argv)
    if min(arguments.duration, arguments.connections, arguments.rounds) < 1:
        parser.error("--duration, --connections and --rounds must be at least 1")
    return arguments


def run(arguments: argparse.Namespace) -> dict[str, Any]:
    wrk, shared = bench.prepare_run()
    chosen: list[Variant] = []
    pythons: list[Path] = []
    skipped: dict[str, str] = {}
    for variant in variants(arguments.only):
        try:
            requirements = compile_requirements(variant.pins)
        except bench.BenchError as error:  # e.g. a FastAPI that needs a newer Starlette
            print(f"skipped {variant.name}: unresolvable", flush=True)
            skipped[variant.name] = str(error).splitlines()[-1].strip()
            continue
        print(f"environment {len(chosen)}: {variant.name}", flush=True)
        pythons.append(bench.ensure_venv(venv_dir(len(chosen)), requirements))
        chosen.append(variant)
    paths = arguments.path or list(PATHS)
    results: dict[str, dict[str, list[Sample]]] = {p: {v.name: [] for v in chosen} for p in paths}
    ports = bench.free_ports(len(chosen))
    with ExitStack() as stack:
        servers = [
            stack.enter_context(
                bench.running_server(
                    f"bisect-{index}",
                    bench.baseline_command(port, python),
                    {**bench.baseline_environment(shared), "BASELINE_POOL_SIZE": POOL_SIZE},
                    port,
                )
            )
            for index, (port, python) in enumerate(zip(ports, pythons, strict=True))
        ]
        order = list(zip(chosen, servers, strict=True))
        for round_number in range(arguments.rounds):
            print(f"round {round_number + 1} of {arguments.rounds}", flush=True)
            for path_name in paths:
                for variant, server in order if round_number % 2 == 0 else order[::-1]:
                    figures = bench.measure(
                        wrk,
                        server,
                        PATHS[path_name],
                        {},
                        duration=arguments.duration,
                        connections=arguments.connections,
                    )
                    results[path_name][variant.name].append(
                        Sample(
                            figures.requests_per_second, figures.p99_ms, figures.cpu_ms_per_request
                        )
                    )
    return {
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": " ".join([".venv/bin/python", "bench/stack_bisect.py", *sys.argv[1:]]),
        "cpu_busy_before_start": arguments.cpu_busy,
        "variants": [{"name": v.name, "pins": v.pins} for v in chosen],
        "skipped": skipped,
        "paths": {
            path: {
                name: {
                    "samples": [vars(sample) for sample in samples],
                    "median_requests_per_second": statistics.median(
                        s.requests_per_second for s in samples
                    ),
                    "rps_ratio": bench.paired_ratio(
                        samples, runs["ceiling"], "requests_per_second"
                    ),
                    "cpu_ratio": bench.paired_ratio(samples, ceiling(runs), "cpu_ms_per_request"),
                    "p99_ratio": bench.paired_ratio(samples, ceiling(runs), "p99_ms"),
                }
                for name, samples in runs.items()
            }
            for path, runs in results.items()
        },
    }


def ceiling(runs: Mapping[str, list[Sample]]) -> list[Sample]:
    return runs["ceiling"]


def format_table(document: dict[str, Any]) -> str:
    lines = []
    paths = document["paths"]
    assert isinstance(paths, dict)
    for path, runs in paths.items():
        lines.append(f"\n{path}: variant / ceiling, median of paired rounds")
        lines.append(f"{'variant':<52} {'req/s':>9} {'req/s ratio':>12} {'CPU/req ratio':>14}")
        for name, figures in runs.items():
            lines.append(
                f"{name:<52} {figures['median_requests_per_second']:>9,.0f} "
                f"{figures['rps_ratio']!s:>12} {figures['cpu_ratio']!s:>14}"
            )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    return bench.report_main(parse_arguments(argv), run, format_table, "stack_bisect.json")


if __name__ == "__main__":
    sys.exit(main())
