"""Baseline: the root of the core branch (accounts, idempotency keys, the job queue).

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

from collections.abc import Sequence

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = ("core",)
depends_on: str | Sequence[str] | None = None
LEGACY_SCHEMA = True  # the schema the linear history up to 0012 built (runner.py)


def upgrade() -> None:
    """Nothing yet: core and each feature add their tables in revisions of their own."""


def downgrade() -> None:
    """Nothing to undo."""
