"""The orders flow through the generated TypeScript client, against a live Keel.

Its script, clients/typescript/src/features/orders/smoke.ts, leaves a generated project with
the orders feature (see keel.scaffold.layout.owned_paths), as this test does.
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

SCRIPT = "src/features/orders/smoke.ts"


@pytest.fixture(scope="module")
def built() -> Path:
    return build()


def test_the_generated_client_places_and_pays_an_order_on_a_live_server(
    built: Path, tmp_path: Path
) -> None:
    output = run_on_live_server(built / "features" / "orders" / "smoke.js", tmp_path)
    assert "typescript orders smoke: ok" in output


def test_a_renamed_pay_operation_breaks_the_build(built: Path, tmp_path: Path) -> None:
    """The check has teeth: the order script against a schema whose pay operation was renamed
    does not compile."""
    pay = ("/api/v1/orders/{order_id}/pay", "post")
    errors = type_errors_with_renamed(pay, "orders-charge", tmp_path)
    assert "ordersPayOrder" in errors
    assert errors.startswith(f"{SCRIPT}("), errors  # the script's use of it
