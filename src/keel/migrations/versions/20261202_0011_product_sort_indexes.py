"""Indexes for the product list's other sorts (`price`, `created_at`, either direction), so a
page of a million products is read in order instead of sorted; `name` has had its index since
0003. The id tie-breaker is an incremental sort over the few rows of equal value.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02 01:55:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_products_price_amount", "products", ["price_amount"])
    op.create_index("ix_products_created_at", "products", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_products_created_at", table_name="products")
    op.drop_index("ix_products_price_amount", table_name="products")
