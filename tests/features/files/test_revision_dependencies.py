"""Files' first revision depends on users (0002): a revision needing both names files' only,
since Alembic cannot upgrade a revision depending on both a revision and its ancestor."""

from __future__ import annotations

import pytest

from tests.support.databases import implied_left_out


@pytest.mark.parametrize(
    ("needed", "kept"),
    [
        (["0002", "files_0001"], ["files_0001"]),
        (["core_0004", "files_0001"], ["core_0004", "files_0001"]),  # neither needs the other
    ],
)
def test_what_files_implies_is_left_out(needed: list[str], kept: list[str]) -> None:
    assert implied_left_out(needed) == kept
