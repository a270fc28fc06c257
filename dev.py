#!/usr/bin/env python3
"""Bootstrap and run Keel with nothing but Python >= 3.11 and pip.

    python3 dev.py serve      # start the server on the embedded defaults (SQLite, in-process)
    python3 dev.py test       # run the whole test suite (with coverage)
    python3 dev.py <cmd> ...  # any other `keel` command, e.g. `check-config`

It creates `.venv`, installs uv into it from PyPI, installs the locked dependencies
(`uv.lock`), then runs the command inside that environment. Extra arguments pass through.
"""

from __future__ import annotations

import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
TEST_COMMAND = [
    "pytest",
    "-n",
    "auto",
    "--dist",
    "loadscope",
    "--cov",
    "--cov-report=term",
]


def run(*command: str | Path) -> None:
    subprocess.run([str(part) for part in command], check=True, cwd=ROOT)


def ensure_environment(*, dev: bool) -> None:
    if sys.version_info < (3, 11):
        sys.exit(f"Keel needs Python 3.11 or newer; this is {sys.version.split()[0]}")
    if not (BIN / "python").exists() and not (BIN / "python.exe").exists():
        print(f"Creating {VENV.name} ...", flush=True)
        venv.create(VENV, with_pip=True)
    uv = BIN / "uv"
    if not uv.exists() and not uv.with_suffix(".exe").exists():
        run(BIN / "python", "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "uv")
    # --inexact keeps uv itself installed when the dev group (which locks it) is left out.
    run(uv, "sync", "--frozen", "--inexact", "--quiet", *([] if dev else ["--no-dev"]))


def main(argv: list[str]) -> int:
    if not argv or argv[0] in {"-h", "--help"}:
        print(__doc__)
        return 0
    command, rest = argv[0], argv[1:]
    ensure_environment(dev=command == "test")
    if command == "test":
        executable = [str(BIN / TEST_COMMAND[0]), *TEST_COMMAND[1:], *rest]
    else:
        executable = [str(BIN / "keel"), command, *rest]
    return subprocess.call(executable, cwd=ROOT)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
