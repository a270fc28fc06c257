"""Indexes that keep a page's cost flat as tables grow: newest-first pages of orders and jobs
per owner and for admins, users oldest first, and (PostgreSQL) trigram indexes for the
product search's `lower(name|sku) LIKE '%q%'`.

The owner indexes `(owner, created_at, id)` replace the single-column ones they start with
(they serve the foreign keys' lookups as well). pg_trgm is a trusted extension (PostgreSQL 13
and later): a database owner may create it; it stays on downgrade, as other objects may use
it. SQLite gets no trigram index: its `LIKE '%q%'` scans, which a development database
affords.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02 01:10:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TRIGRAM_INDEXES = {"ix_products_name_trgm": "name", "ix_products_sku_trgm": "sku"}


def upgrade() -> None:
    op.drop_index("ix_orders_user_id", table_name="orders")
    op.create_index("ix_orders_user_id_created_at", "orders", ["user_id", "created_at", "id"])
    op.create_index("ix_orders_created_at", "orders", ["created_at", "id"])
    op.drop_index("ix_jobs_owner_id", table_name="jobs")
    op.create_index("ix_jobs_owner_id_created_at", "jobs", ["owner_id", "created_at", "id"])
    op.create_index("ix_jobs_created_at", "jobs", ["created_at", "id"])
    op.create_index("ix_users_created_at", "users", ["created_at", "id"])
    if op.get_bind().dialect.name == "postgresql":
        op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        for name, column in TRIGRAM_INDEXES.items():
            op.execute(f"CREATE INDEX {name} ON products USING gin (lower({column}) gin_trgm_ops)")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for name in TRIGRAM_INDEXES:
            op.drop_index(name, table_name="products")
    op.drop_index("ix_users_created_at", table_name="users")
    op.drop_index("ix_jobs_created_at", table_name="jobs")
    op.drop_index("ix_jobs_owner_id_created_at", table_name="jobs")
    op.create_index("ix_jobs_owner_id", "jobs", ["owner_id"])
    op.drop_index("ix_orders_created_at", table_name="orders")
    op.drop_index("ix_orders_user_id_created_at", table_name="orders")
    op.create_index("ix_orders_user_id", "orders", ["user_id"])
