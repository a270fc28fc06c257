"""`keel new feature`: `--dry-run` output, the names it refuses (exit code 2), and what it
plans in a renamed project (registry line, `feature.py`, the feature's migration branch).
Nothing here writes into the project."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from keel.cli import cli
from keel.scaffold import feature, layout
from keel.scaffold.fields import ScaffoldError

ROOT = Path(__file__).resolve().parents[2]
runner = CliRunner()


def new_feature(*arguments: str, project: Path = ROOT) -> tuple[int, str]:
    result = runner.invoke(cli, ["new", "feature", *arguments, "--project", str(project)])
    return result.exit_code, result.output


def tree_state() -> str:
    return subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=all"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout


def test_dry_run_lists_the_files_and_the_registry_edits() -> None:
    before = tree_state()
    code, output = new_feature(
        "notes", "-f", "title:str", "-f", "author:user", "--owned", "--dry-run"
    )
    assert code == 0, output
    for path in (
        "src/keel/features/notes/models.py",
        "src/keel/features/notes/router.py",
        "src/keel/features/notes/service.py",
        "src/keel/features/notes/repository.py",
        "src/keel/features/notes/schemas.py",
        "src/keel/features/notes/feature.py",
        "tests/features/notes/test_notes.py",
        "src/keel/features/notes/migrations/<revision>.py",
    ):
        assert f"  {path}  (" in output
    assert "+++ b/src/keel/features/registry.py" in output
    assert '\n+    "notes",\n )' in output  # the last entry of ENABLED
    assert tree_state() == before
    assert not (ROOT / "src" / "keel" / "features" / "notes").exists()


def test_dry_run_of_references_names_the_contract_configuration() -> None:
    code, output = new_feature(
        "reviews", "-f", "login:ref[auth.AuthSession]", "-f", "at:datetime", "--dry-run"
    )
    assert code == 0, output
    assert not (ROOT / "tests" / "support" / "rows.py").exists()
    assert "  tests/support/rows.py  (" in output  # written with the first reference
    assert '+include-name = ["POST /api/v1/reviews", "PATCH /api/v1/reviews/{review_id}"]' in output


@pytest.mark.parametrize(
    ("arguments", "says"),
    [
        (["users", "-f", "title:str"], "is reserved"),
        (["class", "-f", "title:str"], "Python keyword"),
        (["match", "-f", "title:str"], "Python keyword"),
        (["order", "-f", "title:str"], "SQL reserved word"),
        (["Notes", "-f", "title:str"], "lower-case identifier"),
        (["my-notes", "-f", "title:str"], "lower-case identifier"),
        (["users", "-f", "title:str"], "reserved"),
        (["health", "-f", "title:str"], "reserved"),
        (["core", "-f", "title:str"], "reserved"),
        (["registry", "-f", "title:str"], "reserved"),
        (["api", "-f", "title:str"], "reserved"),
        (["operations", "-f", "title:str"], "reserved"),
        (["auth", "-f", "title:str"], "reserved"),
        (["auth_sessions", "-f", "title:str"], "the table 'auth_sessions' exists"),
        (["user_roles", "-f", "title:str"], "the table 'user_roles' exists"),
        (["alembic_version", "-f", "title:str"], "exists already"),
        (["notes", "-f", "title:str", "--model", "User"], "model class 'User' exists"),
        (["notes", "-f", "title:str", "--model", "Money"], "model class 'Money' exists"),
        (["notes", "-f", "title:str", "--model", "note"], "CapWords"),
        (["notes", "-f", "title:str", "--owned", "--admin-write"], "choose one of them"),
        (["notes"], "Missing option"),
        (["notes", "-f", "id:uuid"], "reserved"),
        (["notes", "-f", "title:text!"], "cannot read the type"),
        (["notes", "-f", "x:ref[nothing]"], "has no models"),
        (["notes", "-f", "x:ref[health]"], "has no models"),
        (["notes", "-f", "x:ref[auth]"], "several models"),
        (["notes", "-f", "x:ref[users]"], "is x:user"),
        (["notes", "-f", "x:ref[auth.Nope]"], "no model Nope"),
        (["notes", "-f", "title:str", "--sort", "title"], "can be sorted"),
        (["notes", "-f", "title:str", "--filter", "nope"], "not one of the fields"),
        (["a" * 24, "-f", "b" * 24 + ":ref[auth.AuthSession]"], "exceed 63 characters"),
    ],
)
def test_refusals_exit_with_2(arguments: list[str], says: str) -> None:
    code, output = new_feature(*arguments, "--dry-run")
    assert code == 2, output
    assert says in " ".join(output.split())


@pytest.mark.parametrize("name", ["worker", "models", "settings"])
def test_a_name_that_is_only_a_module_elsewhere_is_accepted(name: str) -> None:
    """Only names that clash are reserved (scaffold/feature.RESERVED_FEATURES says which)."""
    code, output = new_feature(name, "-f", "title:str", "--dry-run")
    assert code == 0, output
    assert f"src/keel/features/{name}/feature.py" in output


def test_outside_a_keel_project_is_refused(tmp_path: Path) -> None:
    code, output = new_feature("notes", "-f", "title:str", project=tmp_path)
    assert code == 2
    assert "no pyproject.toml" in output
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "other"\n')
    code, output = new_feature("notes", "-f", "title:str", project=tmp_path)
    assert code == 2
    assert "is not a Keel project" in output
    (registry_project(tmp_path) / "src" / "acme" / "features" / "registry.py").unlink()
    code, output = new_feature("notes", "-f", "title:str", project=tmp_path)
    assert code == 2
    assert "no src/acme/features/registry.py" in output


def test_existing_tests_folder_is_refused(tmp_path: Path) -> None:
    project = registry_project(tmp_path)
    (tmp_path / "tests" / "features" / "notes").mkdir(parents=True)
    code, output = new_feature("notes", "-f", "title:str", "--dry-run", project=project)
    assert code == 2
    assert "tests/features/notes exists already" in output


def registry_project(root: Path) -> Path:
    """A skeleton of a renamed project (`acme`): its registry and one feature with a model."""
    (root / "pyproject.toml").write_text(
        '[project]\nname = "acme-shop"\n[tool.keel]\npackage = "acme"\n'
    )
    source = root / "src" / "acme"
    (source / "features" / "catalog").mkdir(parents=True)
    (source / "features" / "__init__.py").write_text("")
    (source / "features" / "catalog" / "__init__.py").write_text("")
    (source / "features" / "catalog" / "models.py").write_text(
        'class Product(Base):\n    __tablename__ = "products"\n'
    )
    (source / "features" / "registry.py").write_text(
        'ENABLED: tuple[str, ...] = (\n    "health",\n    "catalog",\n)\n'
    )
    return root


def test_a_feature_the_project_has_is_refused(tmp_path: Path) -> None:
    project = layout.find_project(registry_project(tmp_path))
    with pytest.raises(ScaffoldError, match="exists already"):
        feature.plan(project, feature.Request("catalog", ["title:str"], feature.Access()))


def test_registry_layout_in_a_renamed_project(tmp_path: Path) -> None:
    project = layout.find_project(registry_project(tmp_path))
    assert project.package == "acme"
    request = feature.Request(
        "notes", ["title:str", "product:ref[catalog]", "editor:user?"], feature.Access(owned=True)
    )
    result = feature.plan(project, request)
    (edit,) = result.edits
    assert (
        edit.after
        == 'ENABLED: tuple[str, ...] = (\n    "health",\n    "catalog",\n    "notes",\n)\n'
    )
    notes = project.source / "features" / "notes"
    assert (result.name, result.migrations) == ("notes", notes / "migrations")
    declared = result.files[notes / "feature.py"]
    assert "from acme.core.features import Feature" in declared
    assert 'requires=("catalog",)' in declared
    rows = result.files[tmp_path / "tests" / "support" / "rows.py"]
    assert "from acme.features.registry import metadata" in rows  # every enabled table
    for path, text in result.files.items():
        assert not re.search(r"\bkeel\.|import keel\b", text), path


@pytest.mark.parametrize(
    ("name", "model"),
    [
        ("tasks", "Task"),
        ("blog_posts", "BlogPost"),
        ("categories", "Category"),
        ("addresses", "Address"),
        ("boxes", "Box"),
        ("batches", "Batch"),
        ("news", "New"),
        ("glass", "Glass"),
        ("inventory", "Inventory"),
    ],
)
def test_model_names_are_singular(name: str, model: str) -> None:
    assert feature.singular_class(name) == model


@pytest.mark.parametrize(
    "registry",
    [
        'FEATURES = (\n    "catalog",\n)\n',
        'ENABLED = ("health", "catalog")\n',
        'ENABLED = [\n    "catalog",\n]\n',
        '"""Features go in ENABLED."""\n',
    ],
)
def test_registries_it_cannot_read_are_refused(tmp_path: Path, registry: str) -> None:
    """A registry edited beyond recognition: the generator says what to do, writes nothing."""
    root = registry_project(tmp_path)
    (root / "src" / "acme" / "features" / "registry.py").write_text(registry)
    with pytest.raises(ScaffoldError, match="register the feature by hand"):
        layout.registry_edit(layout.find_project(root), "notes")


def test_the_registry_line_goes_into_the_tuple_not_the_docstring(tmp_path: Path) -> None:
    root = registry_project(tmp_path)
    registry = root / "src" / "acme" / "features" / "registry.py"
    registry.write_text(
        '"""Adding a feature is appending to `ENABLED` (\n)."""\n\n'
        'ENABLED: tuple[str, ...] = (\n    "catalog",\n)\n\nOTHER = (\n    "x",\n)\n'
    )
    edit = layout.registry_edit(layout.find_project(root), "notes")
    assert edit.after == registry.read_text().replace(
        '    "catalog",\n)', '    "catalog",\n    "notes",\n)'
    )


def test_unreadable_models_are_no_models(tmp_path: Path) -> None:
    root = registry_project(tmp_path)
    (root / "src" / "acme" / "features" / "catalog" / "models.py").write_text("class (:\n")
    assert layout.feature_models(layout.find_project(root), "catalog") == {}
