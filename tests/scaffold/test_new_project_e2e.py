"""End to end: a minimal project generated from this checkout passes its own checks (ruff,
mypy --strict, keel-audit) and a representative part of its own suite on SQLite and
PostgreSQL. The whole suite of every shape, the full one included, runs nightly
(.github/workflows/nightly.yml).

Why minimal alone on every commit: it is the shape the generator changes most (every optional
feature removed, and the rename), where the full project differs from this checkout by the
rename only, which tests/scaffold/test_new_project.py checks on a generated full tree and
test_new_project_rename.py rule by rule. The full
shape here cost about 110 s of CPU per run (its own uv sync, mypy and two suite runs), which
kept CI over its 15 minutes on a slower machine.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.scaffold.new_project_shapes import (
    NAME,
    fast_tests,
    generate,
    project_environment,
    run,
)
from tests.support.databases import POSTGRES_URL, fresh_database_url

SHAPES = {"minimal": ["none"]}
"""The projects generated here, by their `--with`: none of the optional features (the nightly
workflow generates the full one and the rest, one choice left out at a time)."""


@pytest.fixture(scope="module", params=sorted(SHAPES))
def project(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    shape: str = request.param
    started = time.monotonic()
    target = generate(tmp_path_factory.mktemp(shape) / NAME, with_=SHAPES[shape], without=None)
    print(f"keel new project ({shape}) and uv sync: {time.monotonic() - started:.1f} s")  # noqa: T201
    return target


def test_the_generated_project_passes_its_own_lint_types_and_audit(project: Path) -> None:
    env = project_environment()
    run(project, ".venv/bin/ruff", "check", ".", env=env)
    run(project, ".venv/bin/ruff", "format", "--check", ".", env=env)
    run(project, ".venv/bin/mypy", env=env)
    audit = run(project, ".venv/bin/keel-audit", "--fail-on", "warning", env=env)
    assert "src/acme_shop/" in audit.stdout


def test_the_generated_project_runs_its_own_suite_on_sqlite(project: Path) -> None:
    result = run(
        project,
        ".venv/bin/pytest",
        "-p",
        "no:randomly",
        "-q",
        *fast_tests(project),
        env=project_environment(),
    )
    assert " passed" in result.stdout
    assert " failed" not in result.stdout


def test_the_generated_project_runs_its_own_suite_on_postgresql(
    project: Path, tmp_path: Path
) -> None:
    if not POSTGRES_URL:
        pytest.skip("needs KEEL_TEST_DATABASE_URL (PostgreSQL)")
    env = project_environment() | {"CI": "true"}  # in CI, a skipped test is a failure
    env[f"{NAME.upper()}_TEST_DATABASE_URL"] = fresh_database_url("acme", tmp_path)
    result = run(project, ".venv/bin/pytest", "-q", *fast_tests(project), env=env)
    assert " passed" in result.stdout
    assert "skipped" not in result.stdout
