"""A TypeScript client generated from `keel openapi` compiles, and works against a live Keel.

The core script (clients/typescript/src/smoke.ts) registers, signs in, reads the account
back and gets a failed sign-in's error body: what every project has. A schema change that
breaks clients (a renamed operation, a changed field) fails here; each optional feature's
flow has its own script and test (tests/features/orders/test_typescript_client_orders.py).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.typescript_client import (
    build,
    needs_npm,
    run_on_live_server,
    type_errors_with_renamed,
)

pytestmark = needs_npm


@pytest.fixture(scope="module")
def built() -> Path:
    return build()


def test_the_generated_client_registers_and_signs_in_on_a_live_server(
    built: Path, tmp_path: Path
) -> None:
    output = run_on_live_server(built / "smoke.js", tmp_path)
    assert "typescript client smoke: ok" in output


def test_a_renamed_operation_breaks_the_build(built: Path, tmp_path: Path) -> None:
    """The check has teeth: the same script against a schema whose read-me operation was
    renamed does not compile."""
    errors = type_errors_with_renamed(("/api/v1/users/me", "get"), "users-whoami", tmp_path)
    assert "usersReadMe" in errors
    assert errors.startswith("src/smoke.ts("), errors  # the script's use of it
