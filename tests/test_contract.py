"""Contract test: schemathesis, every check and every phase, against the real app on loopback.

The app runs under uvicorn in a thread of this process, on a database of its own (PostgreSQL
when KEEL_TEST_DATABASE_URL is set, as in CI; otherwise SQLite), with file storage and rate
limits off. `st run` — schemathesis' own runner, so the phases are exactly those of the CLI —
drives it with `--checks all` and the examples, coverage, fuzzing and stateful phases, once as
a customer and once as an admin. Zero failures is the assertion; the run's summary is in the
test output. The configuration (`tests/contract/schemathesis.toml`) and hooks
(`tests/contract/hooks.py`) say, with reasons, the few outcomes a schema cannot describe.

It reads the schema from the running app, so endpoints added later are covered without
editing this file. Bounded: a fixed number of examples per operation and a fixed seed (about
half a minute per role on two idle cores), and a hard timeout per run.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from keel.main import create_app
from tests.contract.runner import (
    ROLES,
    contract_settings,
    log_in_everyone,
    run_schemathesis,
    summary,
)
from tests.support.servers import uvicorn_server


@pytest.fixture(params=ROLES)
def live_api(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """(base URL, bearer token) of the role under test, on a server and database of its own."""
    role = str(request.param)
    settings = contract_settings(tmp_path, role)
    with uvicorn_server(create_app(settings), name="contract-api", lifespan="on") as base_url:
        yield base_url, asyncio.run(log_in_everyone(settings, base_url))[role]


def test_api_contract(live_api: tuple[str, str], request: pytest.FixtureRequest) -> None:
    base_url, token = live_api
    result = run_schemathesis(base_url, token)
    role = request.node.callspec.params["live_api"]
    sys.stdout.write(f"schemathesis as {role}:\n{summary(result.stdout)}\n")  # shown with -s
    assert result.returncode == 0, result.stdout[-20_000:] + result.stderr[-5_000:]
    assert " passed" in summary(result.stdout)
