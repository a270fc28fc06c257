"""Alembic environment. Keel always hands it an open connection (see `runner.py`)."""

from __future__ import annotations

from typing import Any, Literal

from alembic import context
from sqlalchemy.engine import Connection

from keel.core.models import UTCDateTime
from keel.features.registry import metadata
from keel.migrations.runner import compare_type, unmodelled_indexes

config = context.config
target_metadata = metadata()


def render_item(type_: str, obj: Any, autogen_context: Any) -> str | Literal[False]:
    """Write Keel's column types as the plain SQLAlchemy types they store as."""
    if type_ == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    return False


def run_migrations(connection: Connection) -> None:
    context.configure(
        render_item=render_item,
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=compare_type,
        compare_server_default=True,
        include_object=unmodelled_indexes(target_metadata),
    )
    with context.begin_transaction():
        context.run_migrations()


connection = config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through `keel migrate`, which provides the connection")
run_migrations(connection)
