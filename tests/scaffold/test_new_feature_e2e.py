"""End to end: `keel new feature` three times into a copy of this project, then the copy's CI.

The copy is the tree git knows (`git ls-files`, plus files not yet added that it does not
ignore). Three features between them use every field
type and every access option, one referring to another feature of the copy and one to a
feature generated in the same run. The generated code must pass, without an edit: ruff
(lint and format), `mypy --strict`, `keel-audit --fail-on warning`, its own tests and the
migration tests on SQLite and on PostgreSQL (when KEEL_TEST_DATABASE_URL is set, as in CI),
and a bounded schemathesis run of the generated routes. Every check is one subprocess with
this environment's interpreter and `PYTHONPATH=<copy>/src:<copy>`, so nothing is installed.

Marked `scaffold_e2e` (`pytest -m scaffold_e2e`): one generation and a handful of
subprocesses, one and a half to six minutes on two cores, as loaded.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from keel.cli import cli
from keel.features.registry import ENABLED

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
FEATURES = {
    "tasks": [
        "--owned",
        *("-f", "title:str", "-f", "notes:text?", "-f", "priority:int", "-f", "budget:money?"),
        *("-f", "done:bool", "-f", "ref_code:uuid?", "-f", "due_at:datetime?"),
        *("-f", "status:enum[todo,doing,done]", "-f", "assignee:user?"),
    ],
    "articles": [
        "--public-read",
        "--admin-write",
        *("-f", "headline:str", "-f", "body:text", "-f", "views:int?", "-f", "price:money"),
        *("-f", "published_at:datetime?", "-f", "featured:bool?", "-f", "kind:enum[news,review]?"),
        # A reference to a model of a feature the project already has, where it has catalog
        # (a project without it still refers across features: comments -> articles, tasks).
        *(("-f", "product:ref[catalog]") if "catalog" in ENABLED else ()),
    ],
    "comments": [
        "--owned",
        "--public-read",
        *("-f", "body:text", "-f", "article:ref[articles]", "-f", "task:ref[tasks]?"),
        *("-f", "rating:int?", "-f", "author:user"),
    ],
}

pytestmark = pytest.mark.scaffold_e2e
MEASURING = ("COV_", "COVERAGE_")
"""The suite's coverage settings stay out of the copy's processes: they would measure the
copy's files (paths in a temporary directory) into this suite's report."""


def copy_tracked_tree(target: Path) -> None:
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        source = ROOT / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    cache = ROOT / ".mypy_cache"  # incremental: mypy re-reads only what changed
    if cache.is_dir():
        shutil.copytree(cache, target / ".mypy_cache")


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    copy = tmp_path_factory.mktemp("project")
    copy_tracked_tree(copy)
    runner = CliRunner()
    started = time.perf_counter()
    for name, options in FEATURES.items():
        result = runner.invoke(
            cli,
            ["new", "feature", name, *options, "--project", str(copy)],
            env={k: None for k in os.environ if k.startswith(MEASURING)},
        )
        assert result.exit_code == 0, result.output
    sys.stdout.write(f"three features generated in {time.perf_counter() - started:.1f} s\n")
    return copy


def start(project: Path, *command: str, **environment: str) -> subprocess.Popen[str]:
    """`command` in the copy, with this environment's tools and the copy's code first; KEEL_*
    settings of the caller's shell stay out (KEEL_TEST_* are kept unless overridden)."""
    inherited = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("KEEL_") or k.startswith("KEEL_TEST_")
    }
    env = {**inherited, "PYTHONPATH": f"{project / 'src'}{os.pathsep}{project}", **environment}
    return subprocess.Popen(
        command,
        cwd=project,
        env={k: v for k, v in env.items() if v},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def finish(process: subprocess.Popen[str], started: float) -> None:
    output, _ = process.communicate(timeout=900)
    name = " ".join(Path(str(part)).name for part in process.args[:3])  # type: ignore[index]
    sys.stdout.write(f"{name}: {time.perf_counter() - started:.1f} s\n")
    assert process.returncode == 0, output[-20_000:]


def run(project: Path, *command: str, **environment: str) -> None:
    finish(start(project, *command, **environment), time.perf_counter())


def revision_of(project: Path, name: str) -> str:
    """The text of feature `name`'s one revision, the first of its branch."""
    (path,) = (project / "src" / "keel" / "features" / name / "migrations").glob("*.py")
    return path.read_text()


def test_generated_files_are_where_the_layout_says(project: Path) -> None:
    registry = (project / "src" / "keel" / "features" / "registry.py").read_text()
    for name in FEATURES:
        package = project / "src" / "keel" / "features" / name
        assert {path.name for path in package.glob("*.py")} >= {
            "__init__.py",
            "feature.py",
            "models.py",
            "schemas.py",
            "repository.py",
            "service.py",
            "router.py",
        }
        assert (project / "tests" / "features" / name / f"test_{name}.py").is_file()
        assert f'    "{name}",\n' in registry
        assert f'branch_labels: str | Sequence[str] | None = ("{name}",)' in revision_of(
            project, name
        )
    assert registry.index('"tasks"') < registry.index('"articles"') < registry.index('"comments"')


def test_a_feature_revision_depends_on_the_features_it_requires(project: Path) -> None:
    ids = {
        name: re.search(r'^revision: str = "(\w+)"$', revision_of(project, name), re.M)
        for name in FEATURES
    }
    assert all(ids.values()), ids
    comments = revision_of(project, "comments")
    depends = re.search(r"^depends_on: [^=]*=(.*?)\n\n", comments, re.M | re.S)
    assert depends is not None
    for required in ("articles", "tasks"):
        found = ids[required]
        assert found is not None
        assert f'"{found.group(1)}"' in depends.group(1)


def test_lint_format_types_and_audit(project: Path) -> None:
    run(project, str(BIN / "ruff"), "check", ".")
    run(project, str(BIN / "ruff"), "format", "--check", ".")
    run(project, str(BIN / "mypy"))
    run(project, str(BIN / "keel-audit"), ".", "--fail-on", "warning")


TESTS = [*(f"tests/features/{name}" for name in FEATURES), "tests/migrations"]
PYTEST = [str(BIN / "pytest"), "-p", "no:randomly", "-p", "no:cacheprovider", "-q", "-n", "0"]


def test_generated_tests_pass_on_sqlite_and_postgresql(project: Path) -> None:
    """Both at once (two processes): the suite's own databases are per label, so the
    PostgreSQL run (KEEL_TEST_DATABASE_URL, as in CI) and the SQLite run never meet."""
    started = time.perf_counter()
    runs = [start(project, *PYTEST, *TESTS, KEEL_TEST_DATABASE_URL="")]
    if os.environ.get("KEEL_TEST_DATABASE_URL"):
        runs.append(start(project, *PYTEST, *TESTS))
    for process in runs:
        finish(process, started)


def test_schemathesis_on_the_generated_routes(project: Path, tmp_path: Path) -> None:
    paths = "^/api/v1/(" + "|".join(FEATURES) + ")"
    script = project / "tests" / "scaffold" / "contract_run.py"
    run(project, sys.executable, str(script), str(tmp_path), paths, KEEL_TEST_DATABASE_URL="")
