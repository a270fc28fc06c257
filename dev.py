#!/usr/bin/env python3
"""Bootstrap and run Keel with nothing but Python >= 3.11 and pip.

    python3 dev.py serve      # start the server on the embedded defaults (SQLite, in-process)
    python3 dev.py test       # run the whole test suite (with coverage)
    python3 dev.py <cmd> ...  # any other `keel` command, e.g. `check-config`

It creates `.venv`, installs uv into it from PyPI, installs the locked dependencies
(`uv.lock`), then runs the command inside that environment. Extra arguments pass through.
The command replaces this process (on POSIX), so signals such as SIGTERM from a process
manager reach the server itself, and nothing is left running without a parent.
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
    "--durations=25",  # the slowest tests, so a run that grows slower says where
]


def run(*command: str | Path) -> None:
    subprocess.run([str(part) for part in command], check=True, cwd=ROOT)


def say(message: str) -> None:
    print(message, flush=True)


def ensure_environment(*, dev: bool) -> None:
    """Each slow step says what it is doing first: a first run takes a minute or two, and
    silence looks like a hang."""
    if sys.version_info < (3, 11):
        sys.exit(f"Keel needs Python 3.11 or newer; this is {sys.version.split()[0]}")
    first_run = not (BIN / "python").exists() and not (BIN / "python.exe").exists()
    if first_run:
        say(f"Creating {VENV.name} (a virtual environment with pip) ...")
        venv.create(VENV, with_pip=True)
    uv = BIN / "uv"
    if not uv.exists() and not uv.with_suffix(".exe").exists():
        say(f"Installing uv into {VENV.name} from PyPI ...")
        run(BIN / "python", "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "uv")
    if first_run:
        say("Installing the locked dependencies from uv.lock (uv shows its progress) ...")
    # --inexact keeps uv itself installed when the dev group (which locks it) is left out.
    # Quiet once installed: then it is a quick no-op check before every command.
    quiet = [] if first_run else ["--quiet"]
    run(uv, "sync", "--frozen", "--inexact", *quiet, *([] if dev else ["--no-dev"]))
    if first_run:
        say("Environment ready.")


def replace_process(executable: list[str]) -> int:
    """Run `executable` in place of this process (POSIX), so that signals sent to `dev.py`
    (SIGTERM from a process manager, Ctrl-C) reach it directly and no orphan is left; on
    Windows, which cannot replace a process, run it as a child and wait."""
    if os.name == "nt":
        return subprocess.call(executable, cwd=ROOT)
    os.chdir(ROOT)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(executable[0], executable)  # noqa: S606 (our own venv's executable, no shell)
    return 0  # not reached: execv does not return


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
    return replace_process(executable)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
