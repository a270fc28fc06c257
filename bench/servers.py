"""The same Keel app under different servers: uvicorn (as `keel serve` runs it), uvicorn's stock
httptools protocol, Granian and Hypercorn.

Run from the repository root, after `uv sync` (Granian and Hypercorn are not Keel
dependencies; the script installs them into a separate environment of its own):

    .venv/bin/python bench/servers.py [--rounds 3] [--duration 5] [--only granian ...]

Every server runs Keel's `create_app` with the production environment of `bench/run.py`, one
process, pinned to CPU 0 (wrk on CPU 1), and is measured one at a time in alternating rounds
(order reversed every other round); each round's figures are divided by `keel serve`'s in the
same round and the median ratio is reported: requests/s, p99 and the server's CPU time per
request (`keel serve` and uvicorn run in the process started; Granian and Hypercorn serve
from a worker process of their own, so their CPU column is empty). After the load, two
probes per server, as `tests/test_serve_limits.py` sends them: a
head larger than `KEEL_HTTP_MAX_HEADER_BYTES` (what comes back, and how fast) and a head that
stops half-way (is the connection closed once `KEEL_HTTP_HEADER_TIMEOUT_SECONDS` is over?).
Traffic goes to 127.0.0.1 only; every server is stopped at the end. Results go to
`bench/results/servers.json`. See `bench/README.md`.
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from contextlib import ExitStack, suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import run as bench  # bench/ is not a package: imported from its directory

# Installed next to Keel's own packages, in an environment of their own, so Keel's lock stays
# as it is. The versions measured; change them here to measure others.
CANDIDATES_VENV = bench.BENCH_DIR / ".venv-servers"
CANDIDATE_PACKAGES = ("granian==2.8.7", "hypercorn==0.18.0")
SCENARIOS = {scenario.name: scenario for scenario in bench.scenarios()}
"""What `--path` may name: run.py's scenarios (core's and the present features')."""
DEFAULT_PATHS = [name for name in ("health", "users_me", "products_list") if name in SCENARIOS]
"""The trivial request, an authenticated one and, where catalog is there, the cached page."""
HEADER_TIMEOUT_SECONDS = 2.0  # short, so the slow-head probe ends soon
OVERSIZED_HEAD_BYTES = 1024 * 1024


def candidates_python() -> Path:
    """Keel's own environment plus the candidate servers, as a separate virtual environment.

    Keel's packages come from its lock (`uv export`), so the app is the same one `keel serve`
    runs; Keel itself is installed from the work tree.
    """
    uv = bench.find_uv()
    exported = subprocess.run(
        [uv, "export", "--frozen", "--no-hashes", "--no-dev", "--no-emit-project", "--quiet"],
        cwd=bench.REPO_ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    if exported.returncode != 0:
        raise bench.BenchError(f"uv export failed:\n{exported.stderr}")
    requirements = exported.stdout + "".join(f"{line}\n" for line in CANDIDATE_PACKAGES)
    python = bench.ensure_venv(CANDIDATES_VENV, bench.compile_requirements(requirements))
    installed = subprocess.run(
        [uv, "pip", "install", "--quiet", "--no-deps", "--python", str(python), "."],
        cwd=bench.REPO_ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    if installed.returncode != 0:
        raise bench.BenchError(
            f"installing Keel into {CANDIDATES_VENV} failed:\n{installed.stderr}"
        )
    return python


def commands(python: Path, port: int) -> dict[str, list[str]]:
    """How each server is started on `port`: one process, no access log, uvloop where it can."""
    host, bind = bench.HOST, str(port)
    return {
        "keel serve": [str(python.parent / "keel"), "serve", "--host", host, "--port", bind],
        "uvicorn stock httptools": [
            str(python),
            "-m",
            "uvicorn",
            "keel.main:create_app",
            "--factory",
            "--host",
            host,
            "--port",
            bind,
            "--http",
            "httptools",
            "--no-access-log",
            "--no-server-header",
            "--log-level",
            "warning",
        ],
        "granian": [
            str(python.parent / "granian"),
            "--interface",
            "asgi",
            "--factory",
            "--host",
            host,
            "--port",
            bind,
            "--workers",
            "1",
            "--loop",
            "uvloop",
            "--log-level",
            "warning",
            "--http",
            "1",
            "--http1-header-read-timeout",
            str(int(HEADER_TIMEOUT_SECONDS * 1000)),
            "keel.main:create_app",
        ],
        "hypercorn": [
            str(python.parent / "hypercorn"),
            "--bind",
            f"{host}:{bind}",
            "--workers",
            "1",
            "--worker-class",
            "uvloop",
            "--log-level",
            "warning",
            "keel.main:create_app()",
        ],
    }


def probe_oversized_head(port: int) -> dict[str, Any]:
    """Send a 1 MiB header; report the status line that comes back and how long it took."""
    head = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + b"a" * OVERSIZED_HEAD_BYTES
    started = time.monotonic()
    received = b""
    with socket.create_connection((bench.HOST, port), timeout=10) as sock:
        with suppress(OSError):
            sock.sendall(head + b"\r\n\r\n")
        with suppress(OSError):
            while chunk := sock.recv(65536):
                received += chunk
    status = received.partition(b"\r\n")[0].decode(errors="replace") or "(closed, no answer)"
    return {"answer": status, "seconds": round(time.monotonic() - started, 3)}


def probe_partial_head(port: int) -> dict[str, Any]:
    """Send half a header line, then nothing: is the connection closed after the timeout?"""
    wait = HEADER_TIMEOUT_SECONDS + 3
    with socket.create_connection((bench.HOST, port), timeout=wait) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: a")
        started = time.monotonic()
        received = b""
        try:
            while chunk := sock.recv(65536):
                received += chunk
            closed = True
        except TimeoutError:
            closed = False
        except OSError:
            closed = True
    status = received.partition(b"\r\n")[0].decode(errors="replace") or "(nothing)"
    return {
        "closed_within_s": round(time.monotonic() - started, 3) if closed else None,
        "answer": status,
    }


def paired(samples: Sequence[bench.Measurement], reference: Sequence[bench.Measurement]) -> Any:
    return {
        "median_requests_per_second": statistics.median(s.requests_per_second for s in samples),
        "median_p99_ms": statistics.median(s.p99_ms for s in samples),
        "rps_ratio": bench.paired_ratio(samples, reference, "requests_per_second"),
        "p99_ratio": bench.paired_ratio(samples, reference, "p99_ms"),
        "cpu_ratio": bench.paired_ratio(samples, reference, "cpu_ms_per_request"),
    }


def run(arguments: argparse.Namespace) -> dict[str, Any]:
    wrk, shared = bench.prepare_run()
    environment = {
        **bench.keel_environment(shared),
        "KEEL_HTTP_HEADER_TIMEOUT_SECONDS": str(HEADER_TIMEOUT_SECONDS),
    }
    python = candidates_python()
    names = [name for name in commands(python, 0) if not arguments.only or name in arguments.only]
    if "keel serve" not in names:
        names.insert(0, "keel serve")
    ports = bench.free_ports(len(names))
    results: dict[str, dict[str, list[bench.Measurement]]] = {}
    probes: dict[str, dict[str, Any]] = {}
    with ExitStack() as stack:
        servers = {
            name: stack.enter_context(
                bench.running_server(
                    f"servers-{index}", commands(python, port)[name], environment, port
                )
            )
            for index, (name, port) in enumerate(zip(names, ports, strict=True))
        }
        keel = servers["keel serve"]
        chosen = arguments.path or DEFAULT_PATHS
        headers: dict[str, Mapping[str, str]] = {
            name: SCENARIOS[name].setup(keel) for name in chosen
        }
        order = list(servers.items())
        for round_number in range(arguments.rounds):
            print(f"round {round_number + 1} of {arguments.rounds}", flush=True)
            for path_name in chosen:
                runs = results.setdefault(path_name, {name: [] for name in names})
                for name, server in order if round_number % 2 == 0 else order[::-1]:
                    runs[name].append(
                        bench.measure(
                            wrk,
                            server,
                            SCENARIOS[path_name].keel_path,
                            headers[path_name],
                            duration=arguments.duration,
                            connections=arguments.connections,
                        )
                    )
        for name, port in zip(names, ports, strict=True):
            probes[name] = {
                "oversized_head": probe_oversized_head(port),
                "partial_head": probe_partial_head(port),
            }
    return {
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": " ".join([".venv/bin/python", "bench/servers.py", *sys.argv[1:]]),
        "cpu_busy_before_start": arguments.cpu_busy,
        "packages": bench.venv_versions(python, (*bench.STACK_PACKAGES, "granian", "hypercorn")),
        "paths": {
            path: {name: paired(samples, runs["keel serve"]) for name, samples in runs.items()}
            for path, runs in results.items()
        },
        "probes": probes,
    }


def format_table(document: dict[str, Any]) -> str:
    lines = []
    for path, runs in document["paths"].items():
        lines.append(f"\n{path}: server / keel serve, median of paired rounds")
        lines.append(
            f"{'server':<26} {'req/s':>9} {'p99 ms':>9} {'req/s ratio':>12} "
            f"{'p99 ratio':>10} {'CPU/req ratio':>14}"
        )
        for name, figures in runs.items():
            lines.append(
                f"{name:<26} {figures['median_requests_per_second']:>9,.0f} "
                f"{figures['median_p99_ms']:>9.2f} {figures['rps_ratio']!s:>12} "
                f"{figures['p99_ratio']!s:>10} {figures['cpu_ratio']!s:>14}"
            )
    lines.append("\nprobes")
    for name, probe in document["probes"].items():
        lines.append(f"{name:<26} {json.dumps(probe)}")
    return "\n".join(lines)


def parse_arguments(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=5, help="seconds per measured run")
    parser.add_argument("--connections", type=int, default=50, help="open HTTP connections")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds")
    parser.add_argument(
        "--only",
        action="append",
        choices=["uvicorn stock httptools", "granian", "hypercorn"],
        help="compare only this server with keel serve (repeatable)",
    )
    parser.add_argument("--path", action="append", choices=list(SCENARIOS), help="(repeatable)")
    arguments = parser.parse_args(argv)
    if min(arguments.duration, arguments.connections, arguments.rounds) < 1:
        parser.error("--duration, --connections and --rounds must be at least 1")
    if bench.scenario_seconds(arguments.duration, arguments.rounds) * 4 > 25 * 60:
        parser.error("the run would outlive the access token; lower --duration or --rounds")
    return arguments


def main(argv: Sequence[str] | None = None) -> int:
    return bench.report_main(parse_arguments(argv), run, format_table, "servers.json")


if __name__ == "__main__":
    sys.exit(main())
