"""End to end: a full and a minimal project generated from this checkout pass their own checks (ruff,
mypy --strict, keel-audit) and a representative part of its own suite on SQLite and
PostgreSQL. The whole suite of every combination runs nightly (.github/workflows/nightly.yml).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from keel.scaffold.project import new_project
from tests.support.databases import POSTGRES_URL, REDIS_URL, fresh_database_url

SUITE_SAMPLE = (
    "tests/features/health",
    "tests/migrations",
    "tests/core/test_config.py",
    "tests/features/catalog/test_products.py",
    "tests/features/auth/test_sessions.py",
)
"""Start-up, both databases' migrations up and down, settings under the new prefix, one
feature's CRUD and accounts' sessions: where a rename that missed something shows first (no
timing-based test: the machine running this is busy with the outer suite). The name is longer
than "keel", so lines grow and the title ("Acme Shop") has a space."""


def run(project: Path, *argv: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        argv, cwd=project, env=env, capture_output=True, text=True, check=False, timeout=600
    )
    assert result.returncode == 0, (
        f"{' '.join(argv)}:\n{result.stdout[-4000:]}{result.stderr[-4000:]}"
    )
    return result


def project_environment() -> dict[str, str]:
    """This suite's environment without what belongs to it: no KEEL_*, no coverage hooks, no
    xdist worker id (the inner suite would name its databases after ours)."""
    skipped = ("KEEL_", "COVERAGE_", "PYTEST_", "VIRTUAL_ENV", "CI")
    env = {name: value for name, value in os.environ.items() if not name.startswith(skipped)}
    if REDIS_URL:
        env["ACME_SHOP_TEST_REDIS_URL"] = REDIS_URL
    return env


SHAPES = {"full": None, "minimal": ["none"]}
"""The projects generated here, by their `--with`: every feature, and none of the optional
ones (the nightly workflow generates the rest, one feature left out at a time)."""


def sample(project: Path) -> list[str]:
    """SUITE_SAMPLE's paths that the project has (a minimal one has no catalog)."""
    return [path for path in SUITE_SAMPLE if (project / path).exists()]


@pytest.fixture(scope="module", params=sorted(SHAPES))
def project(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    shape: str = request.param
    target = tmp_path_factory.mktemp(shape) / "acme_shop"
    started = time.monotonic()
    new_project(
        target, name="acme_shop", env_prefix=None, with_=SHAPES[shape], without=None, say=print
    )
    print(f"keel new project ({shape}): {time.monotonic() - started:.1f} s")  # noqa: T201
    uv = str(Path(sys.executable).parent / "uv")
    env = project_environment()
    offline = subprocess.run(
        [uv, "sync", "--frozen", "--offline"], cwd=target, env=env, capture_output=True, check=False
    )
    if offline.returncode:
        run(target, uv, "sync", "--frozen", env=env)  # the uv cache lacks a package
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
        *sample(project),
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
    env["ACME_SHOP_TEST_DATABASE_URL"] = fresh_database_url("acme", tmp_path)
    result = run(project, ".venv/bin/pytest", "-q", *sample(project), env=env)
    assert " passed" in result.stdout
    assert "skipped" not in result.stdout
