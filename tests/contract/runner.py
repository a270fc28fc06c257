"""Running schemathesis against a live Keel: the settings, the accounts and the `st run`
command of the contract test (tests/test_contract.py), also used by the feature generator's
end-to-end fuzz run (tests/scaffold/contract_run.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx

from keel.core.database import Database, committing
from keel.core.security.passwords import PasswordHasher
from keel.features.users import service as users
from keel.features.users.models import Role
from keel.features.users.schemas import UserCreate
from keel.settings import Settings, load_settings
from tests.conftest import TEST_JWT_SECRET
from tests.support.databases import fresh_database_url

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "tests" / "contract" / "schemathesis.toml"
ST = Path(sys.executable).parent / "st"
PHASES = "examples,coverage,fuzzing,stateful"
EXAMPLES_PER_OPERATION = 15
SEED = 20261201  # fixed: a failure is reproducible, and the suite does not flake
RUN_TIMEOUT_SECONDS = 150
ROLES = ("customer", "admin")

ACCOUNTS = {
    "admin": ("contract-admin@example.com", "contract-admin-password"),
    "customer": ("contract-customer@example.com", "contract-customer-password"),
}


def contract_settings(directory: Path, role: str) -> Settings:
    """A database of its own per role (the run commits real rows, and an admin's run may
    deactivate the customer), limits out of the way."""
    return load_settings(
        environment="test",
        database_url=fresh_database_url(f"contract_{role}", directory),
        auto_migrate=True,
        jwt_secret=TEST_JWT_SECRET,
        password_hash_time_cost=1,
        password_hash_memory_kib=1024,
        rate_limit_enabled=False,
        storage_url=f"file://{directory / 'files'}",
        log_json=True,  # the run provokes errors; console tracebacks would slow the server
        log_level="WARNING",
        _env_file=None,
    )


async def log_in_everyone(settings: Settings, base_url: str) -> dict[str, str]:
    """An admin and a customer, logged in: bearer tokens by role."""
    database = Database.from_settings(settings)
    hasher = PasswordHasher(time_cost=1, memory_kib=1024)
    try:
        async with database.sessionmaker() as session, committing(session):
            for role, (email, password) in ACCOUNTS.items():
                roles = {Role.ADMIN, Role.CUSTOMER} if role == "admin" else {Role.CUSTOMER}
                data = UserCreate(email=email, password=password, full_name=role.title())
                await users.create_user(session, hasher, data, roles=roles)
    finally:
        await database.dispose()
    tokens = {}
    async with httpx.AsyncClient(base_url=base_url) as http:
        for role, (email, password) in ACCOUNTS.items():
            response = await http.post(
                "/api/v1/auth/login", json={"email": email, "password": password}
            )
            assert response.status_code == 200, response.text
            tokens[role] = str(response.json()["access_token"])
    return tokens


def run_schemathesis(
    base_url: str,
    token: str,
    *,
    examples: int = EXAMPLES_PER_OPERATION,
    only: tuple[str, ...] = (),
) -> subprocess.CompletedProcess[str]:
    """`st run` against the app at `base_url`; `only` narrows it (`--include-path-regex R`)."""
    command = [
        str(ST),
        "--config-file",
        str(CONFIG),
        "--no-color",
        "run",
        f"{base_url}/openapi.json",
        "--checks",
        "all",
        "--phases",
        PHASES,
        "--max-examples",
        str(examples),
        "--seed",
        str(SEED),
        "--workers",
        "1",  # hypothesis' lambda introspection is not thread-safe (a coverage-phase error)
        "--request-timeout",
        "10",
        "--header",
        f"Authorization: Bearer {token}",
        *only,
    ]
    environment = {
        **os.environ,
        "SCHEMATHESIS_HOOKS": "tests.contract.hooks",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    # Coverage measures subprocesses through this variable; schemathesis runs none of Keel's
    # code (the server is in this process, measured here), and tracing its generator only
    # slowed the run down.
    environment.pop("COVERAGE_PROCESS_CONFIG", None)
    return subprocess.run(
        command,
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_SECONDS,
        check=False,
    )


def summary(output: str) -> str:
    marker = output.rfind("= SUMMARY =")
    return output[output.rfind("\n", 0, marker) + 1 :] if marker != -1 else output[-3000:]
