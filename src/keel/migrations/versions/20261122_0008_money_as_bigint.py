"""Money columns as BIGINT (amounts up to 10^12 minor units overflowed INTEGER).

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-22 06:05:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = [
    ("products", "price_amount"),
    ("orders", "total_amount"),
    ("order_items", "unit_price"),
    ("payments", "amount"),
]


def _retype(old: type[sa.types.TypeEngine[int]], new: type[sa.types.TypeEngine[int]]) -> None:
    # SQLite stores every INTEGER in up to 8 bytes already, and rebuilding these tables (what
    # a batch alter does there) would cascade through their foreign keys; only PostgreSQL
    # needs the change.
    if op.get_bind().dialect.name != "postgresql":
        return
    for table, column in COLUMNS:
        op.alter_column(table, column, existing_type=old(), type_=new(), existing_nullable=False)


def upgrade() -> None:
    _retype(sa.Integer, sa.BigInteger)


def downgrade() -> None:
    _retype(sa.BigInteger, sa.Integer)
