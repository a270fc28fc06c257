"""Fuzz some routes of a project with schemathesis, as its contract test does, but bounded.

Run as a script by tests/scaffold/test_new_feature_e2e.py inside a generated copy of the
project (`PYTHONPATH=<copy>/src:<copy>`), so the app and the contract configuration are the
copy's: `python contract_run.py DIRECTORY PATH_REGEX`. As an admin (every write is
reachable), on SQLite, with the contract test's fixed seed and fewer examples.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from keel.main import create_app
from tests.contract.runner import contract_settings, log_in_everyone, run_schemathesis, summary
from tests.support.servers import uvicorn_server

EXAMPLES_PER_OPERATION = 8


def main(directory: Path, paths: str) -> int:
    settings = contract_settings(directory, "admin")
    with uvicorn_server(create_app(settings), name="scaffold-api", lifespan="on") as base_url:
        token = asyncio.run(log_in_everyone(settings, base_url))["admin"]
        result = run_schemathesis(
            base_url,
            token,
            examples=EXAMPLES_PER_OPERATION,
            only=("--include-path-regex", paths),
        )
    output = result.stdout if result.returncode else summary(result.stdout)
    sys.stdout.write(output + result.stderr)
    return result.returncode


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]), sys.argv[2]))
