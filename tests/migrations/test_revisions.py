"""`keel migrate revision --feature NAME`: where a feature's revision goes and what it starts
from. Written into a temporary directory standing in for the feature's package, so the
source tree is never touched."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from alembic.script import ScriptDirectory

from keel.core.database import Database
from keel.core.errors import ConfigError
from keel.features import registry
from keel.migrations import runner
from keel.settings import load_settings
from tests.conftest import FreshDatabase
from tests.support.databases import implied_left_out

TABLELESS = next(
    name
    for name in registry.ENABLED
    if not (registry.feature_directory(name) / "migrations").exists()
)
"""An enabled feature with no migrations yet (health always is one)."""


@pytest.fixture
def package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """`TABLELESS`'s package, moved to a temporary directory as far as the runner knows."""
    real_directories = registry.migration_directories

    def directories() -> tuple[Path, ...]:
        found = tmp_path / "migrations"
        return (*real_directories(), *([found] if found.is_dir() else []))

    monkeypatch.setattr(runner, "feature_directory", lambda name: tmp_path)
    monkeypatch.setattr(runner, "migration_directories", directories)
    return tmp_path


def header(path: Path) -> dict[str, object]:
    """The revision file's module-level assignments (revision, down_revision, …)."""
    found: dict[str, object] = {}
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            assert node.value is not None
            found[node.target.id] = ast.literal_eval(node.value)
    return found


def upgrade_body(path: Path) -> str:
    tree = ast.parse(path.read_text())
    (function,) = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "upgrade"]
    return ast.unparse(function.body)


async def test_a_features_first_revision_starts_its_branch_after_core_and_what_it_requires(
    fresh_database: FreshDatabase, package: Path
) -> None:
    database = Database.from_settings(
        load_settings(database_url=await fresh_database("revision"), _env_file=None)
    )
    try:
        await runner.upgrade(database.engine)
        first = await runner.revision(database.engine, "start", feature=TABLELESS)
        assert first.parent == package / "migrations"
        written = header(first)
        assert written["down_revision"] is None
        assert written["branch_labels"] == (TABLELESS,)
        core_head = ScriptDirectory.from_config(runner.alembic_config()).get_revision("core@head")
        assert core_head is not None
        assert core_head.revision in written["depends_on"]  # type: ignore[operator]
        assert upgrade_body(first) == "pass"  # at heads, autogenerate finds nothing to do

        second = await runner.revision(
            database.engine, "more", feature=TABLELESS, autogenerate=False
        )
        assert header(second)["down_revision"] == written["revision"]
        assert header(second)["branch_labels"] is None
        heads = runner.head_revisions()
        assert header(second)["revision"] in heads
        assert written["revision"] not in heads  # the branch has one head: the newest
    finally:
        await database.dispose()


async def test_a_revision_for_a_feature_not_in_the_registry_is_refused(
    fresh_database: FreshDatabase, package: Path
) -> None:
    database = Database.from_settings(
        load_settings(database_url=await fresh_database("revision_unknown"), _env_file=None)
    )
    try:
        with pytest.raises(ConfigError, match=r"not in keel/features/registry\.py"):
            await runner.revision(database.engine, "x", feature="nonexistent", autogenerate=False)
        assert not (package / "migrations").exists()
    finally:
        await database.dispose()


@pytest.mark.parametrize(
    ("needed", "kept"),
    [
        (["0001", "core_0004"], ["core_0004"]),  # an ancestor on the same branch
        (["0002", "core_0003", "core_0004"], ["core_0004"]),
        (["core_0003"], ["core_0003"]),
    ],
)
def test_a_dependency_another_one_implies_is_left_out(needed: list[str], kept: list[str]) -> None:
    """Alembic cannot upgrade a revision depending on both a revision and its ancestor (the
    features' tests check the same across branches, through their `depends_on`)."""
    assert implied_left_out(needed) == kept
