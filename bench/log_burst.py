"""A burst of 500s against the app with the test routes: does /health stay fast (issue 10)?

    PYTHONPATH=. .venv/bin/python bench/log_burst.py                     # console, to a file
    PYTHONPATH=. .venv/bin/python bench/log_burst.py --pipe KEEL_LOG_JSON=true
    PYTHONPATH=OTHER:OTHER/src .venv/bin/python bench/log_burst.py       # another checkout

200 requests that fail 100 frames deep, 10 at a time, while /health is polled; three runs,
each on a fresh server process (`tests/support/routes_server.py`). `--pipe` gives the server a
stdout pipe nobody reads; `KEY=VALUE` arguments are passed to it as environment variables.
Prints, per run, the slowest /health in seconds (30 means no answer), the burst's duration and
the lines logged.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import tempfile
from pathlib import Path
from time import monotonic

from tests.core.test_logging import routes_server, slowest_health_during_a_burst_of_500s


def main(arguments: list[str]) -> None:
    env = dict(argument.split("=", 1) for argument in arguments if "=" in argument)
    pipe = "--pipe" in arguments
    results = []
    for _ in range(3):
        directory = Path(tempfile.mkdtemp())
        log_file = directory / "stdout.log"
        slowest = burst = 0.0
        try:
            with (
                log_file.open("wb") as log,
                routes_server(directory, subprocess.PIPE if pipe else log, **env) as base,
            ):
                started = monotonic()
                slowest = asyncio.run(slowest_health_during_a_burst_of_500s(base))
                burst = monotonic() - started
        except subprocess.TimeoutExpired:
            pass  # the server did not stop within 20 s and was killed
        lines = "-" if pipe else str(len(log_file.read_text().splitlines()))
        results.append((round(slowest, 2), round(burst, 1), lines))
    where = "stdout: a pipe nobody reads" if pipe else "stdout: a file"
    print(f"{env} {where}; (slowest /health s, burst s, lines logged) per run: {results}")


if __name__ == "__main__":
    main(sys.argv[1:])
