"""Prove a feature removable: copy the tracked files, take the feature out, run the checks.

    python -m tests.support.without_feature catalog      # one feature (and what requires it)
    python -m tests.support.without_feature none         # every optional feature out
    python -m tests.support.without_feature all-each     # each optional feature in turn

In a temporary copy of `git ls-files`, `keel.features.removal.remove_features` deletes the
feature; then ruff, mypy and a fast test selection run there on this checkout's virtualenv
(`PYTHONPATH=<copy>/src:<copy>`, so nothing is reinstalled), plus a collection of the whole
suite, which fails on any test module still importing what was removed. Prints one line per
check and exits non-zero if any failed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from keel.features.registry import ENABLED
from keel.features.removal import FIXED_CORE, remove_features

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
OPTIONAL = tuple(name for name in ENABLED if name not in FIXED_CORE)
FAST_TESTS = (
    "tests/migrations",
    "tests/core/test_lifespan.py",
    "tests/core/test_errors.py",
    "tests/test_main.py",
    "tests/test_openapi.py",
    "tests/features/health",
)


def copy_tracked(destination: Path) -> None:
    listed = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, check=True, capture_output=True, text=True
    ).stdout
    for name in filter(None, listed.split("\0")):
        source = ROOT / name
        if source.is_file():
            target = destination / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)


def checks(copy: Path) -> dict[str, list[str]]:
    return {
        "ruff": [str(BIN / "ruff"), "check", "."],
        "mypy": [str(BIN / "mypy")],  # the files pyproject names
        "collect": [str(BIN / "pytest"), "--collect-only", "-q", "-p", "no:randomly", "tests"],
        "tests": [str(BIN / "pytest"), "-q", "-n0", "-p", "no:randomly", *FAST_TESTS],
    }


def run_without(names: set[str]) -> bool:
    """Check a copy without `names`; True when every check passed."""
    with tempfile.TemporaryDirectory(prefix="keel-without-") as directory:
        copy = Path(directory)
        copy_tracked(copy)
        removed = remove_features(copy, names) if names else []
        say(f"== without {sorted(names) or 'nothing'}: removed {removed}")
        environment = {**os.environ, "PYTHONPATH": f"{copy / 'src'}{os.pathsep}{copy}"}
        passed = True
        for label, command in checks(copy).items():
            done = subprocess.run(
                command, cwd=copy, env=environment, capture_output=True, text=True
            )
            output = done.stdout + done.stderr
            tail = output.strip().splitlines()[-1:] or [""]
            say(f"   {label:8} {'ok ' if done.returncode == 0 else 'FAIL'} {tail[0][:150]}")
            if done.returncode != 0:
                passed = False
                for line in _errors(output):
                    say(f"      {line}")
        return passed


def say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def _errors(output: str) -> list[str]:
    """The lines that say what broke (an import of a removed module, a failed test)."""
    keep = ("ERROR", "FAILED", "error:", "ModuleNotFoundError", "ImportError")
    return [line[:160] for line in output.splitlines() if any(k in line for k in keep)][:15]


def main(arguments: list[str]) -> int:
    if arguments == ["all-each"]:
        cases = [{name} for name in OPTIONAL] + [set(OPTIONAL)]
    elif arguments == ["none"]:
        cases = [set(OPTIONAL)]
    else:
        cases = [set(arguments)]
    results = [run_without(case) for case in cases]
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
