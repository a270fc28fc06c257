"""Generated projects as the checks see them, and a command that tries every shape.

    python -m tests.scaffold.new_project_shapes catalog     # a project without catalog
    python -m tests.scaffold.new_project_shapes none        # no optional feature
    python -m tests.scaffold.new_project_shapes all-each    # each choice left out, then all

Each case is made by `keel new project` itself (so "removable" means what the generator
removes), installed with `uv sync --frozen --offline` (online if the cache lacks a package),
and checked with ruff, mypy, a collection of its whole suite (which fails on any test still
importing what went) and the fast tests it has. The end-to-end test imports `run` and
`project_environment` from here; the nightly workflow runs each shape's whole suite.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

from keel.scaffold.project import new_project
from keel.scaffold.project_layout import FEATURE_OPTIONS
from tests.support.databases import REDIS_URL

NAME = "acme_shop"
"""Longer than "keel", with a title that has a space ("Acme Shop"): where a rename that missed
something shows first."""

FAST_TESTS = (
    "tests/features/health",
    "tests/migrations",
    "tests/core/test_config.py",
    "tests/features/auth/test_sessions.py",
    "tests/features/catalog/test_products.py",
)
"""Start-up, migrations up and down, settings under the new prefix, accounts' sessions and,
where it is kept, one feature's CRUD (no timing-based test: the machine may be busy)."""


def run(project: Path, *argv: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run a command in the project; fail with the end of its output if it fails."""
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
        env[f"{NAME.upper()}_TEST_REDIS_URL"] = REDIS_URL
    return env


def generate(target: Path, *, with_: list[str] | None, without: list[str] | None) -> Path:
    """`keel new project` into `target`, installed and ready for its own commands."""
    new_project(target, name=NAME, env_prefix=None, with_=with_, without=without, say=say)
    uv = str(Path(sys.executable).parent / "uv")
    env = project_environment()
    offline = subprocess.run(
        [uv, "sync", "--frozen", "--offline"], cwd=target, env=env, capture_output=True, check=False
    )
    if offline.returncode:
        run(target, uv, "sync", "--frozen", env=env)  # the uv cache lacks a package
    return target


def fast_tests(project: Path) -> list[str]:
    """FAST_TESTS' paths that the project has (a project without catalog has no products)."""
    return [path for path in FAST_TESTS if (project / path).exists()]


def check(project: Path) -> list[str]:
    """Run the checks; the labels of those that failed."""
    env = project_environment()
    commands = {
        "ruff": [".venv/bin/ruff", "check", "."],
        "mypy": [".venv/bin/mypy"],
        "collect": [".venv/bin/pytest", "--collect-only", "-q", "-p", "no:randomly", "tests"],
        "tests": [".venv/bin/pytest", "-q", "-p", "no:randomly", *fast_tests(project)],
    }
    failed = []
    for label, command in commands.items():
        done = subprocess.run(command, cwd=project, env=env, capture_output=True, text=True)
        tail = (done.stdout + done.stderr).strip().splitlines()[-1:] or [""]
        say(f"   {label:8} {'ok ' if done.returncode == 0 else 'FAIL'} {tail[0][:150]}")
        if done.returncode:
            failed.append(label)
    return failed


def say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def main(arguments: list[str]) -> int:
    if arguments == ["all-each"]:
        cases = [[choice] for choice in FEATURE_OPTIONS] + [list(FEATURE_OPTIONS)]
    elif arguments == ["none"]:
        cases = [list(FEATURE_OPTIONS)]
    else:
        cases = [arguments]
    failures = 0
    for without in cases:
        say(f"== without {', '.join(without)}")
        with tempfile.TemporaryDirectory(prefix="keel-shape-") as directory:
            failures += bool(check(generate(Path(directory) / NAME, with_=None, without=without)))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
