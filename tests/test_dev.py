"""`dev.py`: a first run that says what it is doing, and `dev.py serve` that stops on SIGTERM."""

from __future__ import annotations

import importlib.util
import os
import signal
import sys
import time
from pathlib import Path
from types import ModuleType

import httpx
import pytest

from tests.support.network import free_port
from tests.support.processes import development_env, server_process

ROOT = Path(__file__).resolve().parents[1]


def load_dev() -> ModuleType:
    spec = importlib.util.spec_from_file_location("keel_dev_script", ROOT / "dev.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_first_run_announces_each_slow_step(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Creating the venv, installing uv and the dependencies each take seconds to a minute;
    each is announced before it starts (the steps themselves are recorded, not run)."""
    dev = load_dev()
    bin_dir = tmp_path / ".venv" / "bin"
    monkeypatch.setattr(dev, "VENV", tmp_path / ".venv")
    monkeypatch.setattr(dev, "BIN", bin_dir)
    steps: list[str] = []

    def create(path: Path, with_pip: bool) -> None:
        steps.append(f"[output so far: {capsys.readouterr().out!r}] venv")
        bin_dir.mkdir(parents=True)
        (bin_dir / "python").touch()

    def run(*command: str | Path) -> None:
        parts = [str(part) for part in command]
        steps.append(f"[output so far: {capsys.readouterr().out!r}] {' '.join(parts[1:])}")
        if "pip" in parts:
            (bin_dir / "uv").touch()

    monkeypatch.setattr(dev.venv, "create", create)
    monkeypatch.setattr(dev, "run", run)
    dev.ensure_environment(dev=False)
    assert "Creating .venv" in steps[0]
    assert steps[0].endswith("venv")
    assert "Installing uv" in steps[1]
    assert "-m pip install" in steps[1]
    assert "Installing the locked dependencies" in steps[2]
    assert "sync --frozen --inexact" in steps[2]
    assert "--quiet" not in steps[2], "the first install shows uv's progress"
    assert "Environment ready" in capsys.readouterr().out

    steps.clear()
    dev.ensure_environment(dev=False)  # the next run: a quiet, quick check
    assert len(steps) == 1
    assert "''" in steps[0]  # nothing printed
    assert "--quiet" in steps[0]


def descendants(pid: int) -> list[int]:
    found: list[int] = []
    children = Path(f"/proc/{pid}/task/{pid}/children")
    if children.exists():
        for child in children.read_text().split():
            found += [int(child), *descendants(int(child))]
    return found


def running(pid: int) -> bool:
    status = Path(f"/proc/{pid}/status")
    try:
        return "\nState:\tZ" not in status.read_text()
    except FileNotFoundError:
        return False


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="reads /proc (Linux)")
def test_sigterm_to_dev_serve_stops_the_server(tmp_path: Path) -> None:
    port = free_port()
    env = development_env(
        tmp_path / "dev.db",
        KEEL_STORAGE_URL=f"file://{tmp_path / 'files'}",
        KEEL_LOG_LEVEL="WARNING",
    )
    command = [sys.executable, ROOT / "dev.py", "serve", "--port", str(port)]
    started: list[int] = []
    try:
        with server_process(command, port=port, env=env) as served:
            started = [served.pid, *descendants(served.pid)]
            assert served.stop(timeout=30) == 0
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any(running(pid) for pid in started):
            time.sleep(0.1)
        left = [pid for pid in started if running(pid)]
        assert not left, f"processes still running after SIGTERM to dev.py: {left}"
        with pytest.raises(httpx.TransportError):
            httpx.get(f"http://127.0.0.1:{port}/health", timeout=1)
    finally:
        for pid in started:
            if running(pid):
                os.kill(pid, signal.SIGKILL)
