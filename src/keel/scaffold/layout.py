"""Every place `keel new feature` depends on how a project lays out its features.

Two layouts are known, and the one in the project is detected at run time:

- today's: routers listed in `api.py` (`FEATURE_ROUTERS`), models imported in `models.py`,
  one linear migration history in `migrations/versions/`;
- issue 14's feature registry (CONTRACT14): `features/registry.py` lists the enabled
  features, each `features/<name>/feature.py` defines `FEATURE`, and a feature's revisions
  live in `features/<name>/migrations/` on a branch of their own.

The functions that differ between them: `registry_edits` (registering the feature),
`migration_request` (where its revision goes and what it depends on), `uses_feature_modules`
(whether a `feature.py` is generated) and `feature_paths` (what belongs to a feature, for
removal). Nothing else in the generator names `api.py`, `models.py` or `registry.py`.
Reading the project never imports it: models are found by parsing the source.
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
    if not package or not (project.features / "__init__.py").is_file():
        raise ScaffoldError(
            f"{root} is not a Keel project: no src/{package or '<package>'}/features/"
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


def uses_registry(project: Project) -> bool:
    return (project.features / "registry.py").is_file()


def uses_feature_modules(project: Project) -> bool:
    """Whether features declare themselves in `feature.py` (`core/features.py` exists)."""
    return (project.source / "core" / "features.py").is_file()


@dataclass(frozen=True, slots=True)
class Edit:
    path: Path
    before: str
    after: str


def _isort_key(line: str) -> tuple[bool, str]:
    """isort's order within a block (RUF022's for `__all__`): CapWords names before the rest."""
    return line.strip().strip('"')[:1].islower(), line.lower()


def _sorted_block(text: str, pattern: re.Pattern[str], line: str) -> str:
    """`text` with `line` added to the contiguous block of lines matching `pattern`, kept in
    the sorted order isort (ruff) gives them."""
    lines = text.splitlines(keepends=True)
    indexes = [i for i, existing in enumerate(lines) if pattern.match(existing)]
    if not indexes or indexes != list(range(indexes[0], indexes[-1] + 1)):
        raise ScaffoldError(f"cannot find where to add {line.strip()!r}; add it by hand")
    block = sorted([*lines[indexes[0] : indexes[-1] + 1], line], key=_isort_key)
    return "".join([*lines[: indexes[0]], *block, *lines[indexes[-1] + 1 :]])


def _before_closing(text: str, opening: str, line: str) -> str:
    """`line` added as the last item of the tuple or list that starts with `opening`."""
    start = text.find(opening)
    end = text.find("\n)", start) if start != -1 else -1
    if end == -1:
        end = text.find("\n]", start) if start != -1 else -1
    if end == -1:
        raise ScaffoldError(f"cannot find {opening.strip()!r}; register the feature by hand")
    return text[: end + 1] + line + text[end + 1 :]


def registry_edits(project: Project, name: str) -> list[Edit]:
    """The edits that register the feature `name`: one line in the registry (CONTRACT14), or
    today's router in `api.py` and models import in `models.py`."""
    package = project.package
    if uses_registry(project):
        registry = project.features / "registry.py"
        return [_edit(registry, lambda text: _before_closing(text, "ENABLED", f'    "{name}",\n'))]
    router = f"from {package}.features.{{name}}.router import router as {{name}}_router\n"
    models = f"from {package}.features.{{name}} import models as {{name}}_models\n"
    return [
        _edit(
            project.source / "api.py",
            lambda text: _before_closing(
                _sorted_block(text, _like(router), router.format(name=name)),
                "FEATURE_ROUTERS = (",
                f"    {name}_router,\n",
            ),
        ),
        _edit(
            project.source / "models.py",
            lambda text: _sorted_block(
                _sorted_block(text, _like(models), models.format(name=name)),
                re.compile(r'^    "\w+",\n'),
                f'    "{name}_models",\n',
            ),
        ),
    ]


def _like(template: str) -> re.Pattern[str]:
    """The lines `template` (with `{name}`) writes for any feature."""
    return re.compile("^" + re.escape(template.format(name="NAME")).replace("NAME", r"\w+"))


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


@dataclass(frozen=True, slots=True)
class MigrationRequest:
    """What `feature_migration.py` (run in the project's interpreter) is asked to create."""

    directory: Path
    """Where the revision file goes."""
    branch: str | None
    """CONTRACT14: the feature's branch label (its first revision starts the branch)."""
    depends_on: tuple[str, ...]
    """CONTRACT14: the branches whose heads it needs: `core` and the features it requires."""


def migration_request(project: Project, name: str, requires: tuple[str, ...]) -> MigrationRequest:
    if uses_registry(project):
        # The core branch created `users`; branch labels resolve to their heads when written.
        return MigrationRequest(project.features / name / "migrations", name, ("core", *requires))
    return MigrationRequest(project.source / "migrations" / "versions", None, ())


def feature_paths(project: Project, name: str) -> list[Path]:
    """Everything that belongs to the feature `name` (for `--dry-run` and removal): its
    package, its tests and, in the registry layout, its migrations inside the package."""
    return [project.features / name, project.root / "tests" / "features" / name]
