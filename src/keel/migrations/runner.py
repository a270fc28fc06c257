"""Run Alembic from inside Keel: on the app's own async engine, on the running event loop.

Alembic's commands are synchronous; `AsyncConnection.run_sync` hands them a connection on the
same loop, so the lifespan can migrate without a second engine or a nested event loop.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import Script, ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import Integer, MetaData
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.types import TypeEngine

from keel.core.errors import ConfigError
from keel.core.logging import get_logger
from keel.core.models import POSTGRESQL_ONLY
from keel.features.registry import (
    ENABLED,
    feature_directory,
    features_required_by,
    migration_directories,
)

log = get_logger(__name__)

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


def unmodelled_indexes(metadata: MetaData) -> Callable[..., bool]:
    """What autogenerate compares: everything but the indexes tables declare PostgreSQL-only."""
    skipped = frozenset(
        name for table in metadata.tables.values() for name in table.info.get(POSTGRESQL_ONLY, ())
    )

    def include_object(
        obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any
    ) -> bool:
        return not (type_ == "index" and name in skipped)

    return include_object


def alembic_config() -> Config:
    """Core's revisions and every enabled feature's (`<feature>/migrations`), one graph with a
    branch per part: a deleted feature's revisions leave with its package."""
    config = Config()
    config.set_main_option("script_location", str(SCRIPT_LOCATION))
    config.set_main_option("path_separator", "os")
    locations = [SCRIPT_LOCATION / "versions", *migration_directories()]
    config.set_main_option("version_locations", os.pathsep.join(map(str, locations)))
    config.set_main_option("file_template", "%%(year)d%%(month).2d%%(day).2d_%%(rev)s_%%(slug)s")
    return config


async def _run(engine: AsyncEngine, action: Callable[[Config], Any]) -> Any:
    config = alembic_config()

    def run(connection: Connection) -> Any:
        config.attributes["connection"] = connection
        return action(config)

    async with engine.begin() as connection:
        return await connection.run_sync(run)


async def upgrade(engine: AsyncEngine, revision: str = "heads") -> None:
    """Upgrade (every branch by default); a database the old linear history built is first
    stamped onto the branches (see `adopt_legacy`)."""

    def run(config: Config) -> None:
        adopt_legacy(config)
        command.upgrade(config, revision)

    await _run(engine, run)


async def downgrade(engine: AsyncEngine, revision: str) -> None:
    await _run(engine, lambda config: command.downgrade(config, revision))


async def revision(
    engine: AsyncEngine, message: str, *, feature: str | None = None, autogenerate: bool = True
) -> Path:
    """Write a new revision file and return its path: core's (`feature=None`), or a feature's
    in `keel/features/<feature>/migrations/`. A feature's first revision starts its branch
    (labelled with its name) and depends on core's head and the heads of the features it
    requires; later ones follow the branch's head. Autogenerate diffs the models against the
    database, which should be at heads."""

    def run(config: Config) -> Path:
        options = _placement(config, feature)
        written = command.revision(config, message, autogenerate=autogenerate, **options)
        assert isinstance(written, Script)  # one revision, not a list (no multiple heads)
        return Path(written.path)

    path: Path = await _run(engine, run)
    return path


def _placement(config: Config, feature: str | None) -> dict[str, Any]:
    scripts = ScriptDirectory.from_config(config)
    if feature is None:
        return {"head": "core@head"}
    if feature not in ENABLED:
        raise ConfigError([f"feature {feature!r} is not in keel/features/registry.py"])
    if _branch_head(scripts, feature) is not None:
        return {"head": f"{feature}@head"}
    directory = feature_directory(feature) / "migrations"
    directory.mkdir(exist_ok=True)
    config.set_main_option(
        "version_locations", f"{config.get_main_option('version_locations')}{os.pathsep}{directory}"
    )
    needs = [_branch_head(scripts, "core")]
    needs += [_branch_head(scripts, name) for name in features_required_by(feature)]
    return {
        "head": "base",
        "branch_label": feature,
        "version_path": str(directory),
        "depends_on": not_implied(scripts, [head for head in needs if head is not None]),
    }


def not_implied(scripts: ScriptDirectory, revisions: list[str]) -> list[str]:
    """`revisions` without those another of them already needs (as an ancestor, or through
    its `depends_on`). Alembic's upgrade fails on a revision that depends on both a head and
    one of that head's ancestors (a KeyError updating `alembic_version`): a feature requiring
    another that itself depends on core's head names core's head once, through it."""
    implied = {
        ancestor.revision
        for revision in revisions
        for ancestor in scripts.iterate_revisions(revision, "base")
        if ancestor.revision != revision
    }
    return [revision for revision in revisions if revision not in implied]


def _branch_head(scripts: ScriptDirectory, label: str) -> str | None:
    try:
        found = scripts.get_revision(f"{label}@head")
    except CommandError:  # no such branch (yet)
        return None
    return None if found is None else found.revision


LEGACY_HEAD = "0012"
"""The head of the linear history Keel had before features had their own migrations."""


def adopt_legacy(config: Config) -> None:
    """Move a database the old linear history built onto today's branches.

    Up to 0012 one chain created every table; today the same schema is spread over core's
    branch and the features' (each revision that rebuilds part of it says `LEGACY_SCHEMA =
    True`). A database at 0012 has all of it, so it is stamped at the newest such revision of
    each branch present, and the upgrade runs whatever came after. A database part-way along
    the old chain (past 0002, whose id and content survive) is refused: upgrade it to 0012 with
    the release before first. A feature not enabled here keeps its old tables, unused.
    """
    connection = config.attributes["connection"]
    current = set(MigrationContext.configure(connection).get_current_heads())
    scripts = ScriptDirectory.from_config(config)
    known = {script.revision for script in scripts.walk_revisions()}
    stale = current - known
    if not stale:
        return
    if stale != {LEGACY_HEAD}:
        raise ConfigError(
            [
                f"the database is at revision {', '.join(sorted(stale))}, which this release "
                f"does not know; if it is Keel's old linear history, upgrade it to "
                f"{LEGACY_HEAD} with an earlier release first"
            ]
        )
    built = [script for script in scripts.walk_revisions() if _is_legacy(script)]
    superseded = {  # implied by a newer one (as a parent, or as something it depends on)
        ancestor.revision
        for script in built
        for ancestor in scripts.iterate_revisions(script.revision, "base")
        if ancestor.revision != script.revision
    }
    newest = sorted(script.revision for script in built if script.revision not in superseded)
    command.stamp(config, newest, purge=True)
    log.info("legacy_schema_adopted", legacy=LEGACY_HEAD, stamped=newest)


def _is_legacy(script: Script) -> bool:
    return bool(getattr(script.module, "LEGACY_SCHEMA", False))


def head_revisions() -> set[str]:
    """One head per branch: core's and each enabled feature's that has tables."""
    return set(ScriptDirectory.from_config(alembic_config()).get_heads())


async def current_revisions(engine: AsyncEngine) -> set[str]:
    """What the version table holds: Alembic keeps only revisions nothing applied depends on,
    so a feature's head may stand for the branches it depends on too."""

    def read(connection: Connection) -> set[str]:
        return set(MigrationContext.configure(connection).get_current_heads())

    async with engine.connect() as connection:
        return await connection.run_sync(read)


def pending_revisions(current: set[str]) -> set[str]:
    """The revisions an upgrade to heads would still run, given the version table."""
    scripts = ScriptDirectory.from_config(alembic_config())
    everything = {script.revision for script in scripts.walk_revisions()}
    if not current <= everything:
        return everything  # an unknown (legacy) revision: nothing is known to be applied
    applied = {
        script.revision for head in current for script in scripts.iterate_revisions(head, "base")
    }
    return everything - applied


async def is_at_head(engine: AsyncEngine) -> bool:
    return not pending_revisions(await current_revisions(engine))
