from __future__ import annotations

import uuid

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from keel.core.models import POSTGRESQL_ONLY, Base, Timestamps, UUIDPrimaryKey


class Product(UUIDPrimaryKey, Timestamps, Base):
    __tablename__ = "products"
    __table_args__ = (
        CheckConstraint("stock >= 0", name="stock_not_negative"),
        CheckConstraint("price_amount >= 0", name="price_not_negative"),
        # Every sort of the list reads an index (name's is on the column below).
        Index("ix_products_price_amount", "price_amount"),
        Index("ix_products_created_at", "created_at"),
        # Trigram indexes for the search, built by the PostgreSQL migration only.
        {"info": {POSTGRESQL_ONLY: ("ix_products_name_trgm", "ix_products_sku_trgm")}},
    )

    sku: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200), index=True)
    description: Mapped[str] = mapped_column(Text, default="")
    # Money as integer minor units plus an ISO 4217 code: never floats.
    # BIGINT: Money allows amounts up to 10^12 minor units.
    price_amount: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    stock: Mapped[int] = mapped_column(default=0)
    is_active: Mapped[bool] = mapped_column(default=True)
    image_file_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("files.id", ondelete="SET NULL")
    )
