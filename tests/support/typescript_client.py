"""The TypeScript client check's machinery, shared by the core smoke test and each feature's.

CI builds the client with @hey-api/openapi-ts (pinned in clients/typescript/package-lock.json,
from npm), type-checks it together with the smoke scripts (`tsc`, strict) and runs a script
against a real `keel serve`. The core script is `src/smoke.ts`; a feature's is
`src/features/<name>/smoke.ts`, which leaves a generated project together with the feature.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from keel.cli import cli
from keel.core.config import get_settings
from tests.support.network import free_port
from tests.support.processes import development_env, server_process

ROOT = Path(__file__).resolve().parents[2]
PROJECT = ROOT / "clients" / "typescript"
ADMIN_EMAIL = "ts-admin@example.com"
ADMIN_PASSWORD = "a long admin password for the smoke test"

needs_npm = pytest.mark.skipif(
    shutil.which("npm") is None, reason="needs Node.js and npm (CI installs them)"
)


def run(*command: str | Path, cwd: Path = PROJECT, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        [str(part) for part in command],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, f"{command}: {done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout


def tool(name: str) -> Path:
    """A pinned tool of the project, run directly (what `npx --no-install` would find,
    without starting npm's own CLI first)."""
    return PROJECT / "node_modules" / ".bin" / name


def build() -> Path:
    """Install the pinned tools, write the document, generate the client and compile: the
    directory of the compiled scripts.

    Once per test run, under a lock: the core and feature modules that call this run on
    different xdist workers against the one `clients/typescript/`, and a second build
    (which empties `dist/`) under a script the first worker was running failed it with
    "Cannot find module dist/smoke.js"."""
    dist = PROJECT / "dist"
    marker = dist / ".built-by-run"
    this_run = os.environ.get("PYTEST_XDIST_TESTRUNUID") or str(os.getpid())
    with (PROJECT / ".build.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        if marker.is_file() and marker.read_text() == this_run:
            return dist
        if not (PROJECT / "node_modules" / ".package-lock.json").exists():
            run("npm", "ci", "--no-audit", "--no-fund")
        run(sys.executable, "-m", "keel", "openapi", "--output", str(PROJECT / "openapi.json"))
        shutil.rmtree(PROJECT / "src" / "client", ignore_errors=True)
        run(tool("openapi-ts"))
        shutil.rmtree(dist, ignore_errors=True)
        run(tool("tsc"))
        marker.write_text(this_run)
    return dist


def run_on_live_server(script: Path, tmp_path: Path) -> str:
    """Run compiled `script` against a real `keel serve` with a migrated database and an
    admin (ADMIN_EMAIL/ADMIN_PASSWORD): its output."""
    port = free_port()
    env = development_env(tmp_path / "ts.db", KEEL_LOG_LEVEL="WARNING")
    # The database is prepared with the same commands, in this process (a Python process
    # of its own for each only repeated imports); the server under test is a real process.
    with pytest.MonkeyPatch.context() as patch:
        for name in ("KEEL_ENVIRONMENT", "KEEL_DATABASE_URL", "KEEL_LOG_LEVEL"):
            patch.setenv(name, env[name])
        patch.setenv("KEEL_ADMIN_PASSWORD", ADMIN_PASSWORD)
        get_settings.cache_clear()
        for command in (["migrate", "upgrade"], ["create-admin", "--email", ADMIN_EMAIL]):
            result = CliRunner().invoke(cli, command)
            assert result.exit_code == 0, result.output
        get_settings.cache_clear()
    command = [sys.executable, "-m", "keel", "serve", "--port", str(port)]
    with server_process(command, port=port, env=env, cwd=tmp_path) as served:
        return run(
            "node",
            script,
            env={
                "PATH": os.environ["PATH"],
                "KEEL_URL": served.base,
                "ADMIN_EMAIL": ADMIN_EMAIL,
                "ADMIN_PASSWORD": ADMIN_PASSWORD,
            },
        )


def type_errors_with_renamed(operation: tuple[str, str], new_id: str, tmp_path: Path) -> str:
    """`tsc`'s output for the scripts against a schema whose `operation` (path, method) got
    the operationId `new_id`; the build must fail."""
    document = json.loads((PROJECT / "openapi.json").read_text(encoding="utf-8"))
    path, method = operation
    document["paths"][path][method]["operationId"] = new_id
    project = tmp_path / "renamed"
    project.mkdir()
    (project / "openapi.json").write_text(json.dumps(document), encoding="utf-8")
    for name in ("package.json", "tsconfig.json", "openapi-ts.config.ts"):
        shutil.copy(PROJECT / name, project / name)
    shutil.copytree(PROJECT / "src", project / "src", ignore=shutil.ignore_patterns("client"))
    (project / "node_modules").symlink_to(PROJECT / "node_modules")
    run(tool("openapi-ts"), cwd=project)
    # The libraries' declarations passed the strict check in `build` and are the same files
    # here, so only the project's own sources are checked again (a third of the time).
    failed = subprocess.run(
        [tool("tsc"), "--noEmit", "--skipLibCheck"],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert failed.returncode != 0, "the build must fail"
    return failed.stdout
