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


def keel(*arguments: str, env: dict[str, str] | None = None) -> str:
    return run(sys.executable, "-m", "keel", *arguments, env=env)


@pytest.fixture(scope="module")
def built() -> Path:
    """Install the pinned tools, write the document, generate the client and compile."""
    if not (PROJECT / "node_modules" / ".package-lock.json").exists():
        run("npm", "ci", "--no-audit", "--no-fund")
    keel("openapi", "--output", str(PROJECT / "openapi.json"))
    shutil.rmtree(PROJECT / "src" / "client", ignore_errors=True)
    run("npx", "--no-install", "openapi-ts")
    shutil.rmtree(PROJECT / "dist", ignore_errors=True)
    run("npx", "--no-install", "tsc")
    return PROJECT / "dist" / "smoke.js"


def test_the_generated_client_places_and_pays_an_order_on_a_live_server(
    built: Path, tmp_path: Path
) -> None:
    port = free_port()
    env = development_env(tmp_path / "ts.db", KEEL_LOG_LEVEL="WARNING")
    keel("migrate", "upgrade", env=env)
    keel("create-admin", "--email", ADMIN_EMAIL, env={**env, "KEEL_ADMIN_PASSWORD": ADMIN_PASSWORD})
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
    run("npx", "--no-install", "openapi-ts", cwd=project)
    failed = subprocess.run(
        ["npx", "--no-install", "tsc", "--noEmit"],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert failed.returncode != 0
    assert "ordersPayOrder" in failed.stdout
