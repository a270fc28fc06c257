"""Payment claims on orders, leases on idempotency keys, and refunds of late charges.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01 22:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Plain ADD COLUMN (nullable, or with a constant default): no table rebuild on SQLite.
    op.add_column("orders", sa.Column("payment_claim", sa.String(length=300), nullable=True))
    op.add_column(
        "orders",
        sa.Column("payment_claimed_until", sa.DateTime(timezone=True), nullable=True),
    )
    op.add_column(
        "orders",
        sa.Column("payment_attempt", sa.Integer(), server_default="0", nullable=False),
    )
    op.add_column("idempotency_keys", sa.Column("holder", sa.Uuid(), nullable=True))
    op.add_column(
        "idempotency_keys",
        sa.Column("locked_until", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_table(
        "refunds",
        sa.Column("order_id", sa.Uuid(), nullable=False),
        sa.Column("transaction_id", sa.String(length=100), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("reason", sa.String(length=50), nullable=False),
        sa.Column("refund_id", sa.String(length=100), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["order_id"],
            ["orders.id"],
            name=op.f("fk_refunds_order_id_orders"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_refunds")),
    )
    op.create_index(op.f("ix_refunds_order_id"), "refunds", ["order_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_refunds_order_id"), table_name="refunds")
    op.drop_table("refunds")
    with op.batch_alter_table("idempotency_keys") as batch:
        batch.drop_column("locked_until")
        batch.drop_column("holder")
    with op.batch_alter_table("orders") as batch:
        batch.drop_column("payment_attempt")
        batch.drop_column("payment_claimed_until")
        batch.drop_column("payment_claim")
