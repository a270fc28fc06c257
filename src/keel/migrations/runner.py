"""Run Alembic from inside Keel: on the app's own async engine, on the running event loop.

Alembic's commands are synchronous; `AsyncConnection.run_sync` hands them a connection on the
same loop, so the lifespan can migrate without a second engine or a nested event loop.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Integer
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.types import TypeEngine

SCRIPT_LOCATION = Path(__file__).parent


def compare_type(
    context: Any,
    inspected_column: Any,
    metadata_column: Any,
    inspected_type: TypeEngine[Any],
    metadata_type: TypeEngine[Any],
) -> bool | None:
    """Alembic's type comparison, except that SQLite's integers are one type whatever their
    declared width (every INTEGER column holds 8 bytes), so no migration rebuilds a table
    there to widen one. None means "compare as usual"."""
    if (
        context.dialect.name == "sqlite"
        and isinstance(inspected_type, Integer)
        and isinstance(metadata_type, Integer)
    ):
        return False
    return None


POSTGRESQL_ONLY_INDEXES = frozenset({"ix_products_name_trgm", "ix_products_sku_trgm"})
"""Built by migration 0010 on PostgreSQL alone (pg_trgm), so not in the models."""


def include_object(
    obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any
) -> bool:
    """What autogenerate compares: everything but the PostgreSQL-only indexes."""
    return not (type_ == "index" and name in POSTGRESQL_ONLY_INDEXES)


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(SCRIPT_LOCATION))
    config.set_main_option("file_template", "%%(year)d%%(month).2d%%(day).2d_%%(rev)s_%%(slug)s")
    return config


async def _run(engine: AsyncEngine, action: Callable[[Config], Any]) -> Any:
    config = alembic_config()

    def run(connection: Connection) -> Any:
        config.attributes["connection"] = connection
        return action(config)

    async with engine.begin() as connection:
        return await connection.run_sync(run)


async def upgrade(engine: AsyncEngine, revision: str = "head") -> None:
    await _run(engine, lambda config: command.upgrade(config, revision))


async def downgrade(engine: AsyncEngine, revision: str) -> None:
    await _run(engine, lambda config: command.downgrade(config, revision))


async def revision(engine: AsyncEngine, message: str, *, autogenerate: bool = True) -> None:
    await _run(engine, lambda config: command.revision(config, message, autogenerate=autogenerate))


def head_revisions() -> set[str]:
    return set(ScriptDirectory.from_config(alembic_config()).get_heads())


async def current_revisions(engine: AsyncEngine) -> set[str]:
    def read(connection: Connection) -> set[str]:
        return set(MigrationContext.configure(connection).get_current_heads())

    async with engine.connect() as connection:
        return await connection.run_sync(read)


async def is_at_head(engine: AsyncEngine) -> bool:
    return await current_revisions(engine) == head_revisions()
