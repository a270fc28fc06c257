"""SQL for payments and refunds: rows are only ever added (they are the money's history)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from keel.features.payments.models import Payment, Refund


async def add(session: AsyncSession, row: Payment | Refund) -> None:
    session.add(row)
    await session.flush()
