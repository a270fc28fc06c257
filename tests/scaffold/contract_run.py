"""Fuzz some routes of a project with schemathesis, as its contract test does, but bounded.

Run as a script by tests/scaffold/test_new_feature_e2e.py inside a generated copy of the
project (`PYTHONPATH=<copy>/src:<copy>`), so the app and the contract configuration are the
copy's: `python contract_run.py DIRECTORY PATH_REGEX`. As an admin (every write is
reachable), on SQLite, with a fixed seed and few examples per operation.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

from keel.main import create_app
from tests.support.servers import uvicorn_server
from tests.test_contract import CONFIG, ST, contract_settings, log_in_everyone

EXAMPLES_PER_OPERATION = 8
SEED = 20261202


def main(directory: Path, paths: str) -> int:
    settings = contract_settings(directory, "admin")
    with uvicorn_server(create_app(settings), name="scaffold-api", lifespan="on") as base_url:
        token = asyncio.run(log_in_everyone(settings, base_url))["admin"]
        command = [
            str(ST),
            "--config-file",
            str(CONFIG),
            "--no-color",
            "run",
            f"{base_url}/openapi.json",
            "--include-path-regex",
            paths,
            "--checks",
            "all",
            "--phases",
            "examples,coverage,fuzzing,stateful",
            "--max-examples",
            str(EXAMPLES_PER_OPERATION),
            "--seed",
            str(SEED),
            "--workers",
            "1",
            "--request-timeout",
            "10",
            "--header",
            f"Authorization: Bearer {token}",
        ]
        environment = {**os.environ, "SCHEMATHESIS_HOOKS": "tests.contract.hooks"}
        return subprocess.run(command, env=environment, check=False, timeout=120).returncode


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]), sys.argv[2]))
