"""Migrations round-trip on SQLite and PostgreSQL, and agree with the models."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import Script, ScriptDirectory
from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection

from keel.core.database import Database
from keel.core.errors import ConfigError
from keel.core.lifespan import prepare_schema
from keel.features.registry import metadata, migration_directories
from keel.migrations import runner
from keel.settings import load_settings
from tests.conftest import FreshDatabase


def database_for(url: str) -> Database:
    return Database.from_settings(load_settings(database_url=url, _env_file=None))


def diff_from_models(connection: Connection) -> list[object]:
    """What autogenerate would write: nothing, when migrations and models agree."""
    context = MigrationContext.configure(
        connection,
        opts={
            "compare_type": runner.compare_type,
            "compare_server_default": True,
            "include_object": runner.unmodelled_indexes(metadata()),
        },
    )
    return list(compare_metadata(context, metadata()))


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
        async with database.engine.connect() as connection:
            assert await connection.run_sync(diff_from_models) == []
    finally:
        await database.dispose()


def test_every_revision_has_a_downgrade_and_every_branch_one_head() -> None:
    scripts = ScriptDirectory.from_config(runner.alembic_config())
    revisions = list(scripts.walk_revisions())
    assert revisions, "there is at least the baseline revision"
    for revision in revisions:
        assert callable(getattr(revision.module, "downgrade", None)), revision.revision
    roots = {r.revision: r for r in revisions if r.down_revision is None}
    labels = {label for root in roots.values() for label in root.branch_labels}
    assert labels == {"core", *(d.parent.name for d in migration_directories())}
    assert len(labels) == len(roots), "each branch starts once, with its label"
    assert len(scripts.get_heads()) == len(roots), "one head per branch"


def test_each_branch_lives_in_its_own_directory() -> None:
    """Core's revisions are in `migrations/versions`, a feature's in its package: a deleted
    feature's revisions leave with it, and no revision continues another part's branch."""
    scripts = ScriptDirectory.from_config(runner.alembic_config())
    by_directory: dict[Path, list[Script]] = {}
    for revision in scripts.walk_revisions():
        by_directory.setdefault(Path(revision.path).parent, []).append(revision)
    expected = {runner.SCRIPT_LOCATION / "versions", *migration_directories()}
    assert set(by_directory) == expected
    for directory, revisions in by_directory.items():
        label = "core" if directory.name == "versions" else directory.parent.name
        ids = {r.revision for r in revisions}
        (root,) = [r for r in revisions if r.down_revision is None]
        assert root.branch_labels == {label}
        for revision in revisions:
            assert revision is root or set(_parents(revision)) <= ids, revision.revision


def _parents(revision: Script) -> tuple[str, ...]:
    down = revision.down_revision
    return (down,) if isinstance(down, str) else tuple(down or ())


async def test_a_database_the_old_linear_history_built_is_adopted(
    fresh_database: FreshDatabase,
) -> None:
    """Before issue 14 one chain (0001 to 0012) built every table. Such a database (the
    tables the `LEGACY_SCHEMA` revisions build, its version table at 0012) is stamped onto the
    branches, not rebuilt; the upgrade runs only what came later (a feature added since, by
    hand or by `keel new feature`), and it then agrees with the models like any other."""
    database = database_for(await fresh_database("legacy"))
    try:
        for script in ScriptDirectory.from_config(runner.alembic_config()).walk_revisions():
            if getattr(script.module, "LEGACY_SCHEMA", False):
                await runner.upgrade(database.engine, script.revision)
        async with database.engine.begin() as connection:
            await connection.execute(text("DELETE FROM alembic_version"))
            await connection.execute(
                text("INSERT INTO alembic_version (version_num) VALUES (:old)"),
                {"old": runner.LEGACY_HEAD},
            )
            await connection.execute(text("CREATE TABLE legacy_probe (label VARCHAR(10))"))
            await connection.execute(text("INSERT INTO legacy_probe VALUES ('kept')"))
        assert not await runner.is_at_head(database.engine)
        assert runner.pending_revisions({runner.LEGACY_HEAD}) == {
            r.revision
            for r in ScriptDirectory.from_config(runner.alembic_config()).walk_revisions()
        }

        await runner.upgrade(database.engine)  # would fail on existing tables if it re-ran them

        assert await runner.is_at_head(database.engine)
        assert runner.LEGACY_HEAD not in await runner.current_revisions(database.engine)
        async with database.engine.begin() as connection:
            probe = await connection.execute(text("SELECT label FROM legacy_probe"))
            assert probe.scalars().all() == ["kept"]  # nothing was dropped and rebuilt
            await connection.execute(text("DROP TABLE legacy_probe"))
            assert await connection.run_sync(diff_from_models) == []
    finally:
        await database.dispose()


async def test_a_database_part_way_along_the_old_history_is_refused(
    fresh_database: FreshDatabase,
) -> None:
    database = database_for(await fresh_database("legacy_mid"))
    try:
        async with database.engine.begin() as connection:
            await connection.execute(
                text("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL)")
            )
            await connection.execute(text("INSERT INTO alembic_version VALUES ('0008')"))
        with pytest.raises(ConfigError, match="upgrade it to 0012 with an earlier release"):
            await runner.upgrade(database.engine)
        assert await runner.current_revisions(database.engine) == {"0008"}  # left as it was
    finally:
        await database.dispose()


async def test_a_feature_branch_goes_down_and_up_alone(fresh_database: FreshDatabase) -> None:
    """A branch nothing depends on is taken down by its label (`<feature>@base`), leaving the
    rest, and comes back with the next upgrade. With no feature tables, core is the branch."""
    scripts = ScriptDirectory.from_config(runner.alembic_config())
    revisions = list(scripts.walk_revisions())
    needed = {d for r in revisions for d in (*_parents(r), *(r.dependencies or ()))}
    leaves = sorted(
        Path(scripts.get_revision(head).path).parent.parent.name  # type: ignore[union-attr]
        for head in scripts.get_heads()
        if head not in needed and Path(scripts.get_revision(head).path).parent.name != "versions"  # type: ignore[union-attr]
    )
    label = leaves[0] if leaves else "core"
    database = database_for(await fresh_database("branch"))
    try:
        await runner.upgrade(database.engine)
        async with database.engine.connect() as connection:
            everything = await connection.run_sync(tables)
        await runner.downgrade(database.engine, f"{label}@base")
        async with database.engine.connect() as connection:
            without = await connection.run_sync(tables)
        assert without < everything  # its tables went, and only those
        assert (without == set()) == (label == "core")
        assert not await runner.is_at_head(database.engine)
        await runner.upgrade(database.engine)
        assert await runner.is_at_head(database.engine)
        async with database.engine.connect() as connection:
            assert await connection.run_sync(tables) == everything
    finally:
        await database.dispose()


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
