"""Payments' first revision depends on orders', which depends on users (0002) and products:
a revision needing users and payments names payments only (Alembic cannot upgrade a revision
depending on both a revision and its ancestor)."""

from __future__ import annotations

import pytest

from tests.support.databases import implied_left_out


@pytest.mark.parametrize(
    ("needed", "kept"),
    [
        (["0002", "payments_0001"], ["payments_0001"]),  # through orders' depends_on
        (["catalog_0001", "orders_0001"], ["orders_0001"]),
        (["core_0004", "payments_0001"], ["core_0004", "payments_0001"]),
    ],
)
def test_what_payments_implies_is_left_out(needed: list[str], kept: list[str]) -> None:
    assert implied_left_out(needed) == kept
