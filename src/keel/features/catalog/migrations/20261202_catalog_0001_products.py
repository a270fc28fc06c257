"""The product catalog, with each product's image pointing at a file, the list's sort indexes
and, on PostgreSQL, trigram indexes for the search's `lower(name|sku) LIKE '%q%'`.

pg_trgm is a trusted extension (PostgreSQL 13 and later): a database owner may create it; it
stays on downgrade, as other objects may use it. SQLite gets no trigram index: its
`LIKE '%q%'` scans, which a development database affords. The trigram indexes are not in the
models (SQLite has none), so the table declares them in `info` and autogenerate skips them.

Until features had migrations of their own (issue 14) this was 0003, 0006, 0008, 0010 and
0011 of one linear history; this is the same schema.

Revision ID: catalog_0001
Revises:
Depends on: files_0001
Create Date: 2026-12-02 05:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "catalog_0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = ("catalog",)
depends_on: str | Sequence[str] | None = ("files_0001",)  # product images
LEGACY_SCHEMA = True  # the schema the linear history up to 0012 built (runner.py)

TRIGRAM_INDEXES = {"ix_products_name_trgm": "name", "ix_products_sku_trgm": "sku"}


def upgrade() -> None:
    op.create_table(
        "products",
        sa.Column("sku", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("price_amount", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("stock", sa.Integer(), nullable=False),
        sa.Column("is_active", sa.Boolean(), nullable=False),
        sa.Column("image_file_id", sa.Uuid(), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("price_amount >= 0", name=op.f("ck_products_price_not_negative")),
        sa.CheckConstraint("stock >= 0", name=op.f("ck_products_stock_not_negative")),
        sa.ForeignKeyConstraint(
            ["image_file_id"],
            ["files.id"],
            name=op.f("fk_products_image_file_id_files"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_products")),
        sa.UniqueConstraint("sku", name=op.f("uq_products_sku")),
    )
    op.create_index(op.f("ix_products_name"), "products", ["name"])
    op.create_index("ix_products_price_amount", "products", ["price_amount"])
    op.create_index("ix_products_created_at", "products", ["created_at"])
    if op.get_bind().dialect.name == "postgresql":
        op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        for name, column in TRIGRAM_INDEXES.items():
            op.execute(f"CREATE INDEX {name} ON products USING gin (lower({column}) gin_trgm_ops)")


def downgrade() -> None:
    op.drop_table("products")  # its indexes go with it
