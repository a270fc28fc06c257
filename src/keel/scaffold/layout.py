"""Every place `keel new feature` depends on how a project lays out its features.

A Keel project lists its enabled features in `features/registry.py` (`ENABLED`, one line
each); each `features/<name>/feature.py` declares what the feature contributes
(`FEATURE = Feature(...)`), and a feature's revisions live in `features/<name>/migrations/`
on an Alembic branch of their own (README's Architecture; docs/decisions.md, "Issue 14").
This module finds the project, reads its features and models, and says what registering a
new feature edits and where its revision goes. Reading the project never imports it: models
are found by parsing the source.
"""

from __future__ import annotations

import ast
import re
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from keel.scaffold.fields import ScaffoldError

CORE_TABLES = frozenset({"alembic_version", "users"})
"""Always refused as a new feature's table, whatever the project's models say."""


@dataclass(frozen=True, slots=True)
class Project:
    root: Path
    package: str

    @property
    def source(self) -> Path:
        return self.root / "src" / self.package

    @property
    def features(self) -> Path:
        return self.source / "features"


def find_project(root: Path) -> Project:
    """The project at `root`: its package is `[tool.keel] package` in pyproject.toml, else
    `[project].name` (dashes as underscores), so a renamed project (`acme`) works alike."""
    pyproject = root / "pyproject.toml"
    if not pyproject.is_file():
        raise ScaffoldError(f"{root} has no pyproject.toml: run keel new feature in a project")
    data = tomllib.loads(pyproject.read_text(encoding="utf-8"))
    tool = data.get("tool", {}).get("keel", {})
    package = tool.get("package") or str(data.get("project", {}).get("name", "")).replace("-", "_")
    project = Project(root, package)
    if not package or not (project.features / "registry.py").is_file():
        raise ScaffoldError(
            f"{root} is not a Keel project: no src/{package or '<package>'}/features/registry.py"
        )
    return project


def existing_features(project: Project) -> set[str]:
    return {path.parent.name for path in project.features.glob("*/__init__.py")}


def _tables_in(path: Path) -> dict[str, str]:
    """Model class -> table name, for every class of the module that sets `__tablename__`."""
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"))
    except (OSError, SyntaxError, UnicodeDecodeError):
        return {}
    found = {}
    for node in tree.body:
        if not isinstance(node, ast.ClassDef):
            continue
        for statement in node.body:
            if (
                isinstance(statement, ast.Assign)
                and any(
                    isinstance(t, ast.Name) and t.id == "__tablename__" for t in statement.targets
                )
                and isinstance(statement.value, ast.Constant)
                and isinstance(statement.value.value, str)
            ):
                found[node.name] = statement.value.value
    return found


def existing_models(project: Project) -> dict[str, str]:
    """Every model class of the project's source -> its table."""
    found: dict[str, str] = {}
    for path in sorted(project.source.rglob("*.py")):
        found.update(_tables_in(path))
    return found


def feature_models(project: Project, feature: str) -> dict[str, str]:
    """A feature's models (class -> table), read from its `models.py`."""
    return _tables_in(project.features / feature / "models.py")


@dataclass(frozen=True, slots=True)
class Edit:
    path: Path
    before: str
    after: str


def _appended_to_enabled(text: str, name: str) -> str:
    """`text` (the registry) with `name` as the last entry of the `ENABLED` tuple."""
    opening = re.search(r"^ENABLED\b[^\n]*\($", text, re.MULTILINE)
    end = text.find("\n)", opening.end()) if opening else -1
    if end == -1:
        raise ScaffoldError("cannot find the ENABLED tuple; register the feature by hand")
    return f'{text[: end + 1]}    "{name}",\n{text[end + 1 :]}'


def registry_edit(project: Project, name: str) -> Edit:
    """Registering the feature `name`: its line appended to the registry's `ENABLED`."""
    return _edit(project.features / "registry.py", lambda text: _appended_to_enabled(text, name))


def _edit(path: Path, change: Callable[[str], str]) -> Edit:
    before = path.read_text(encoding="utf-8")
    return Edit(path, before, change(before))


CONTRACT_CONFIG = Path("tests/contract/schemathesis.toml")


def contract_edit(project: Project, operations: list[str], reason: str) -> Edit | None:
    """Tell the contract fuzzer's configuration (when the project has one) that these
    operations may answer a schema-valid body with 422, and why; None when nothing to say."""
    path = project.root / CONTRACT_CONFIG
    if not operations or not path.is_file():
        return None
    names = ", ".join(f'"{operation}"' for operation in operations)
    block = (
        f"\n# {reason}\n[[operations]]\ninclude-name = [{names}]\n"
        "[operations.checks.positive_data_acceptance]\n"
        'expected-statuses = ["2xx", "3xx", 401, 403, 404, 409, 422, 429, "5xx"]\n'
    )
    return _edit(path, lambda text: text + block)


def migrations_directory(project: Project, name: str) -> Path:
    """Where the feature `name`'s revisions go: its first one starts the branch `name`."""
    return project.features / name / "migrations"


def owned_paths(package: str, name: str) -> tuple[str, ...]:
    """Where the feature `name` keeps its files, relative to the project root: its package
    (with its migrations), tests, benchmarks, doc and TypeScript smoke script. A new feature
    refuses to overwrite any of them, and `keel new project` drops them all with the feature."""
    return (
        f"src/{package}/features/{name}/",
        f"tests/features/{name}/",
        f"bench/features/{name}/",
        f"docs/features/{name}.md",
        f"clients/typescript/src/features/{name}/",
    )


def feature_paths(project: Project, name: str) -> list[Path]:
    """`owned_paths` in this project."""
    return [project.root / path for path in owned_paths(project.package, name)]
