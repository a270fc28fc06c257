"""A TypeScript client generated from `keel openapi` compiles, and works against a live Keel.

CI builds the client with @hey-api/openapi-ts (pinned in clients/typescript/package-lock.json,
from npm), type-checks it together with a script that uses it (`tsc`, strict), and runs that
script against a real `keel serve`: register, sign in, list products, order and pay. A schema
change that breaks clients (a renamed operation, a changed field) fails here.
"""

from __future__ import annotations

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

ROOT = Path(__file__).resolve().parents[1]
PROJECT = ROOT / "clients" / "typescript"
ADMIN_EMAIL = "ts-admin@example.com"
ADMIN_PASSWORD = "a long admin password for the smoke test"

pytestmark = pytest.mark.skipif(
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


def keel(*arguments: str, env: dict[str, str] | None = None) -> str:
    return run(sys.executable, "-m", "keel", *arguments, env=env)


@pytest.fixture(scope="module")
def built() -> Path:
    """Install the pinned tools, write the document, generate the client and compile."""
    if not (PROJECT / "node_modules" / ".package-lock.json").exists():
        run("npm", "ci", "--no-audit", "--no-fund")
    keel("openapi", "--output", str(PROJECT / "openapi.json"))
    shutil.rmtree(PROJECT / "src" / "client", ignore_errors=True)
    run(tool("openapi-ts"))
    shutil.rmtree(PROJECT / "dist", ignore_errors=True)
    run(tool("tsc"))
    return PROJECT / "dist" / "smoke.js"


def test_the_generated_client_places_and_pays_an_order_on_a_live_server(
    built: Path, tmp_path: Path
) -> None:
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
        output = run(
            "node",
            built,
            env={
                "PATH": os.environ["PATH"],
                "KEEL_URL": served.base,
                "ADMIN_EMAIL": ADMIN_EMAIL,
                "ADMIN_PASSWORD": ADMIN_PASSWORD,
            },
        )
    assert "typescript client smoke: ok" in output


def test_a_renamed_operation_breaks_the_build(built: Path, tmp_path: Path) -> None:
    """The check has teeth: the same script against a schema whose pay operation was renamed
    does not compile."""
    document = json.loads((PROJECT / "openapi.json").read_text(encoding="utf-8"))
    pay = document["paths"]["/api/v1/orders/{order_id}/pay"]["post"]
    pay["operationId"] = "orders-charge"
    project = tmp_path / "renamed"
    (project / "src").mkdir(parents=True)
    (project / "openapi.json").write_text(json.dumps(document), encoding="utf-8")
    for name in ("package.json", "tsconfig.json", "openapi-ts.config.ts"):
        shutil.copy(PROJECT / name, project / name)
    shutil.copy(PROJECT / "src" / "smoke.ts", project / "src" / "smoke.ts")
    (project / "node_modules").symlink_to(PROJECT / "node_modules")
    run(tool("openapi-ts"), cwd=project)
    # The libraries' declarations passed the strict check in `built` and are the same files
    # here, so only the project's own sources are checked again (a third of the time).
    failed = subprocess.run(
        [tool("tsc"), "--noEmit", "--skipLibCheck"],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert failed.returncode != 0
    assert "ordersPayOrder" in failed.stdout
    assert failed.stdout.startswith("src/smoke.ts("), failed.stdout  # the script's use of it
