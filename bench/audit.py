"""Time keel-audit on a large tree of real Python against `ruff check` and `bandit -r`.

Run from the repository root:

    .venv/bin/python bench/audit.py [--tree DIR] [--rounds 3]

Without `--tree` it builds one under /tmp/keel-audit-bench: the sdists of a few well-known
packages (`pip download --no-deps --no-binary :all:`), unpacked; nothing is committed.
bandit is installed into a throwaway venv there, never into Keel's environment. Each round
runs the three tools one after another, alternating their order (the machine is shared, so
single figures are noisy: the ratios from the same round are what to read). Per run it
records wall time, CPU time (user + system, from `wait4`) and peak RSS. keel-audit runs on
one core (it is single-threaded); ruff is given one thread (`RAYON_NUM_THREADS=1`) for the
one-core comparison and also timed with its default threads.

Memory as the tree grows: keel-audit is also run on the first quarter, half and the whole
of the tree (by package), peak RSS reported per size. Results are printed and written to
bench/results/audit.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
WORK = Path(tempfile.gettempdir()) / "keel-audit-bench"
PACKAGES = [
    "django",
    "fastapi",
    "alembic",
    "flask",
    "requests",
]  # their sdists build metadata offline


def build_tree(work: Path) -> Path:
    sdists, tree = work / "sdists", work / "tree"
    if tree.is_dir() and any(tree.iterdir()):
        return tree
    sdists.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--no-binary", ":all:",
         "-d", str(sdists), *PACKAGES],
        check=True,
    )  # fmt: skip
    tree.mkdir(parents=True, exist_ok=True)
    for archive in sorted(sdists.iterdir()):
        if archive.name.endswith((".tar.gz", ".tgz")):
            with tarfile.open(archive) as tar:
                tar.extractall(tree, filter="data")
        elif archive.suffix == ".zip":
            with zipfile.ZipFile(archive) as package:
                package.extractall(tree)  # noqa: S202 (sdists from PyPI, into /tmp)
    return tree


def bandit_executable(work: Path) -> Path:
    venv = work / "bandit-venv"
    bandit = venv / "bin" / "bandit"
    if not bandit.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "bandit"], check=True)
    return bandit


def measure(command: list[str], env: dict[str, str] | None = None) -> dict[str, float]:
    started = time.perf_counter()
    process = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env
    )
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    return {
        "wall_s": round(time.perf_counter() - started, 3),
        "cpu_s": round(usage.ru_utime + usage.ru_stime, 3),
        "peak_rss_mib": round(usage.ru_maxrss / 1024, 1),
        "exit": process.returncode,
    }


def count_lines(tree: Path) -> tuple[int, int]:
    report = WORK / "report.json"
    subprocess.run(
        [str(ROOT / ".venv/bin/keel-audit"), str(tree), "--format", "json", "-o", str(report),
         "--fail-on", "never"],
        check=True,
    )  # fmt: skip
    document = json.loads(report.read_text())
    return document["files"], document["lines"]


def subset(tree: Path, fraction: float) -> Path:
    """The first `fraction` of the tree's packages, as a directory of symlinks."""
    packages = sorted(p for p in tree.iterdir() if p.is_dir())
    keep = packages[: max(1, round(len(packages) * fraction))]
    target = WORK / f"subset-{int(fraction * 100)}"
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    for package in keep:
        shutil.copytree(package, target / package.name, symlinks=True)
    return target


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tree", type=Path)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    WORK.mkdir(parents=True, exist_ok=True)
    tree = args.tree.resolve() if args.tree else build_tree(WORK)
    files, lines = count_lines(tree)
    print(f"tree: {tree} — {files:,} Python files, {lines:,} lines")
    one_thread = {**os.environ, "RAYON_NUM_THREADS": "1"}
    tools: dict[str, tuple[list[str], dict[str, str] | None]] = {
        "keel-audit": (
            [str(ROOT / ".venv/bin/keel-audit"), str(tree), "--format", "json", "-o",
             os.devnull, "--fail-on", "never"],
            None,
        ),
        "ruff (1 thread)": (
            [str(ROOT / ".venv/bin/ruff"), "check", "--no-cache", "--exit-zero", "--quiet",
             "--select", "ALL", str(tree)],
            one_thread,
        ),
        "ruff (default threads)": (
            [str(ROOT / ".venv/bin/ruff"), "check", "--no-cache", "--exit-zero", "--quiet",
             "--select", "ALL", str(tree)],
            None,
        ),
        "bandit": (
            [str(bandit_executable(WORK)), "-r", str(tree), "-q", "-f", "json", "-o",
             os.devnull, "--exit-zero"],
            None,
        ),
    }  # fmt: skip
    rounds: list[dict[str, Any]] = []
    names = list(tools)
    for number in range(args.rounds):
        order = names if number % 2 == 0 else list(reversed(names))
        result = {name: measure(*tools[name]) for name in order}
        ka = result["keel-audit"]
        result["ratios"] = {
            f"keel-audit cpu / {name} cpu": round(ka["cpu_s"] / result[name]["cpu_s"], 2)
            for name in names
            if name != "keel-audit" and result[name]["cpu_s"]
        }
        rounds.append(result)
        print(f"round {number + 1}: " + json.dumps(result))
    best = {name: min(r[name]["cpu_s"] for r in rounds) for name in names}
    summary: dict[str, Any] = {
        "files": files,
        "lines": lines,
        "lines_per_cpu_second": {name: round(lines / cpu) for name, cpu in best.items() if cpu},
        "keel_audit_cpu_over": {
            name: round(best["keel-audit"] / cpu, 2)
            for name, cpu in best.items()
            if name != "keel-audit" and cpu
        },
    }
    growth = []
    for fraction in (0.25, 0.5, 1.0):
        part = tree if fraction == 1.0 else subset(tree, fraction)
        _, part_lines = count_lines(part)
        command = tools["keel-audit"][0]
        run = measure([command[0], str(part), *command[2:]])
        growth.append({"fraction": fraction, "lines": part_lines, **run})
        print(f"memory at {fraction:.0%} ({part_lines:,} lines): {run['peak_rss_mib']} MiB")
    summary["memory_growth"] = growth
    print(json.dumps(summary, indent=2))
    out = ROOT / "bench" / "results" / "audit.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"rounds": rounds, "summary": summary}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
