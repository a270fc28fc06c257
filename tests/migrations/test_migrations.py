"""Migrations round-trip on SQLite and PostgreSQL, and agree with the models."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect
from sqlalchemy.engine import Connection

from keel.core.config import load_settings
from keel.core.database import Database
from keel.core.errors import ConfigError
from keel.core.lifespan import prepare_schema
from keel.features.registry import metadata
from keel.migrations import runner
from tests.conftest import FreshDatabase


def database_for(url: str) -> Database:
    return Database.from_settings(load_settings(database_url=url, _env_file=None))


def tables(connection: Connection) -> set[str]:
    return set(inspect(connection).get_table_names()) - {"alembic_version"}


async def test_upgrade_downgrade_upgrade_round_trip(
    fresh_database: FreshDatabase,
) -> None:
    database = database_for(await fresh_database("roundtrip"))
    try:
        await runner.upgrade(database.engine)
        assert await runner.is_at_head(database.engine)
        async with database.engine.connect() as connection:
            after_first = await connection.run_sync(tables)
        assert after_first == set(metadata().tables)

        await runner.downgrade(database.engine, "base")
        assert await runner.current_revisions(database.engine) == set()
        async with database.engine.connect() as connection:
            assert await connection.run_sync(tables) == set()

        await runner.upgrade(database.engine)
        async with database.engine.connect() as connection:
            assert await connection.run_sync(tables) == after_first
        assert await runner.is_at_head(database.engine)
    finally:
        await database.dispose()


async def test_models_and_migrations_agree(fresh_database: FreshDatabase) -> None:
    database = database_for(await fresh_database("autogenerate"))
    try:
        await runner.upgrade(database.engine)

        def diff(connection: Connection) -> list[object]:
            context = MigrationContext.configure(
                connection,
                opts={
                    "compare_type": runner.compare_type,
                    "compare_server_default": True,
                    "include_object": runner.include_object,
                },
            )
            return list(compare_metadata(context, metadata()))

        async with database.engine.connect() as connection:
            assert await connection.run_sync(diff) == []
    finally:
        await database.dispose()


def test_every_revision_has_a_downgrade() -> None:
    scripts = ScriptDirectory.from_config(runner.alembic_config())
    revisions = list(scripts.walk_revisions())
    assert revisions, "there is at least the baseline revision"
    for revision in revisions:
        assert callable(getattr(revision.module, "downgrade", None)), revision.revision
    assert len(scripts.get_heads()) == 1, "one linear history"


async def test_development_upgrades_the_database_itself(
    fresh_database: FreshDatabase,
) -> None:
    url = await fresh_database("auto")
    database = database_for(url)
    try:
        await prepare_schema(database, load_settings(database_url=url, _env_file=None))
        assert await runner.is_at_head(database.engine)
    finally:
        await database.dispose()


async def test_production_refuses_a_database_behind_head(
    fresh_database: FreshDatabase,
) -> None:
    url = await fresh_database("behind")
    database = database_for(url)
    production = load_settings(environment="production", database_url=url, _env_file=None)
    try:
        with pytest.raises(ConfigError, match="keel migrate upgrade"):
            await prepare_schema(database, production)
        await runner.upgrade(database.engine)
        await prepare_schema(database, production)  # at head: accepted
    finally:
        await database.dispose()
