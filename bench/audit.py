"""Time keel-audit on a large tree of real Python against `ruff check` and `bandit -r`.

Run from the repository root:

    .venv/bin/python bench/audit.py [--rounds 5]

The tree is built once under bench/.audit-cache/ (git-ignored; it holds a CACHEDIR.TAG, so
`keel-audit .` on Keel does not audit it): the pinned sdists below (`pip download --no-deps
--no-binary :all:`), unpacked, ~102,000 lines. bandit is installed into a throwaway venv
there, never into Keel's environment. The 2x and 4x trees are two and four copies of it, for
memory as the tree grows (each copy is a separate directory, so every module is parsed and
analysed again; copies of a module share its dotted name, as two checkouts would).

A second tree, the app tree, is the fastapi sdist (~136,000 lines): it mentions `fastapi`
nearly everywhere, so keel-audit treats it as a FastAPI app and runs the route and lifespan
rules on it (their own memory path); it is grown to 2x and 4x the same way. Memory growth is
reported for both trees as the ratio of peak RSS at 4x to 1x (1.0: flat).

Each round runs every measurement once, alternating the order between rounds (the machine
is shared, so single figures are noisy: medians over the rounds are reported, with the load
average at the start of each round). Per run: wall time, CPU time (user + system, from
`wait4`) and peak RSS. keel-audit runs on one core (it is single-threaded); ruff is given
one thread (`RAYON_NUM_THREADS=1`) for the one-core comparison and also timed with its
default threads. Every keel-audit run is cold: it keeps no cache between runs. Results are
printed and written to bench/results/audit.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tarfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "bench" / ".audit-cache"
PACKAGES = ["alembic==1.20.1", "httpx==0.28.1", "starlette==1.10.0"]
APP_PACKAGES = ["fastapi==0.165.0"]
SIZES = (1, 2, 4)
CACHEDIR_TAG = (
    "Signature: 8a477f597d28d172789f06886806bc55\n"
    "# keel-audit benchmark cache (bench/audit.py): sdists from PyPI, unpacked. Not source.\n"
)


def build_tree(work: Path, name: str = "tree", packages: list[str] = PACKAGES) -> Path:
    sdists, tree = work / "sdists", work / name
    work.mkdir(parents=True, exist_ok=True)
    (work / "CACHEDIR.TAG").write_text(CACHEDIR_TAG)
    if tree.is_dir() and any(tree.iterdir()):
        return tree
    sdists.mkdir(exist_ok=True)
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--no-binary", ":all:",
         "-d", str(sdists), *packages],
        check=True,
    )  # fmt: skip
    tree.mkdir()
    for pin in packages:  # only the pinned sdists, whatever else the directory holds
        name, version = pin.split("==")
        for archive in sdists.glob(f"{name}-{version}.tar.gz"):
            with tarfile.open(archive) as tar:
                tar.extractall(tree, filter="data")
    return tree


def grown(tree: Path, factor: int) -> Path:
    """`factor` copies of the tree side by side (the tree itself for 1)."""
    if factor == 1:
        return tree
    target = WORK / f"{tree.name}-x{factor}"
    if not target.is_dir():
        for copy in range(1, factor + 1):
            shutil.copytree(tree, target / f"copy-{copy}", symlinks=True)
    return target


def bandit_executable(work: Path) -> Path:
    venv = work / "bandit-venv"
    bandit = venv / "bin" / "bandit"
    if not bandit.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "bandit"], check=True)
    return bandit


# Every tool runs with its bytecode cached, as an installed package has it (pip compiles
# it on install; bandit's venv is pip-installed): with PYTHONDONTWRITEBYTECODE set, as on
# some machines, keel-audit's editable source and its uv-installed dependencies were
# compiled again on every run (~0.4 s of CPU each). The first run (`count_lines`) writes it.
TOOL_ENV = {name: value for name, value in os.environ.items() if name != "PYTHONDONTWRITEBYTECODE"}


def measure(command: list[str], env: dict[str, str] | None = None) -> dict[str, float]:
    started = time.perf_counter()
    process = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env or TOOL_ENV
    )
    _, status, usage = os.wait4(process.pid, 0)
    return {
        "wall_s": round(time.perf_counter() - started, 3),
        "cpu_s": round(usage.ru_utime + usage.ru_stime, 3),
        "peak_rss_mib": round(usage.ru_maxrss / 1024, 1),
        "exit": os.waitstatus_to_exitcode(status),
    }


def keel_audit(tree: Path, output: str = os.devnull) -> list[str]:
    return [str(ROOT / ".venv/bin/keel-audit"), str(tree), "--format", "json", "-o", output,
            "--fail-on", "never"]  # fmt: skip


def count_lines(tree: Path) -> tuple[int, int]:
    """Files and lines as keel-audit counts them (the lines it parsed)."""
    report = WORK / "report.json"
    subprocess.run(keel_audit(tree, str(report)), check=True, env=TOOL_ENV)
    document = json.loads(report.read_text())
    return document["files"], document["lines"]


def median(runs: list[dict[str, float]], key: str) -> float:
    return round(statistics.median(run[key] for run in runs), 3)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    tree = build_tree(WORK)
    app_tree = build_tree(WORK, "app-tree", APP_PACKAGES)
    # Each run's name → (tree, lines): "keel-audit x2" on the library tree, "keel-audit app
    # x2" on the app tree.
    audited: dict[str, tuple[Path, int]] = {}
    for label, base in (("", tree), ("app ", app_tree)):
        for factor in SIZES:
            path = grown(base, factor)
            files, lines = count_lines(path)
            audited[f"keel-audit {label}x{factor}"] = (path, lines)
            print(f"{label or 'library '}tree x{factor}: {path} — {files:,} files, {lines:,} lines")
    ruff = [str(ROOT / ".venv/bin/ruff"), "check", "--no-cache", "--exit-zero", "--quiet",
            "--select", "ALL", str(tree)]  # fmt: skip
    tools: dict[str, tuple[list[str], dict[str, str] | None]] = {
        **{name: (keel_audit(path), None) for name, (path, _) in audited.items()},
        "ruff (1 thread)": (ruff, {**TOOL_ENV, "RAYON_NUM_THREADS": "1"}),
        "ruff (default threads)": (ruff, None),
        "bandit": (
            [str(bandit_executable(WORK)), "-r", str(tree), "-q", "-f", "json", "-o",
             os.devnull, "--exit-zero"],
            None,
        ),
    }  # fmt: skip
    names = list(tools)
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in names}
    loads: list[float] = []
    for number in range(args.rounds):
        loads.append(round(os.getloadavg()[0], 2))
        order = names if number % 2 == 0 else list(reversed(names))
        for name in order:
            runs[name].append(measure(*tools[name]))
        line = {name: runs[name][-1]["cpu_s"] for name in names}
        print(f"round {number + 1} (load {loads[-1]}): cpu s {json.dumps(line)}")
    lines = audited["keel-audit x1"][1]
    cpu = {name: median(runs[name], "cpu_s") for name in names}
    summary: dict[str, Any] = {
        "lines": lines,
        "app_lines": audited["keel-audit app x1"][1],
        "rounds": args.rounds,
        "load_average_1min_per_round": loads,
        "median": {
            name: {key: median(runs[name], key) for key in ("cpu_s", "wall_s", "peak_rss_mib")}
            for name in names
        },
        "lines_per_cpu_second": {
            name: round(audited.get(name, (tree, lines))[1] / cpu[name])
            for name in names
            if cpu[name]
        },
        "keel_audit_cpu_over": {
            name: round(cpu["keel-audit x1"] / cpu[name], 2)
            for name in names
            if not name.startswith("keel") and cpu[name]
        },
        "memory_growth": [
            {
                "run": name,
                "lines": lines_audited,
                "peak_rss_mib": median(runs[name], "peak_rss_mib"),
            }
            for name, (_, lines_audited) in audited.items()
        ],
    }
    for label, key in (("", "library"), ("app ", "app")):
        rss = {f: median(runs[f"keel-audit {label}x{f}"], "peak_rss_mib") for f in SIZES}
        summary[f"peak_rss_x4_over_x1_{key}"] = round(rss[4] / rss[1], 2)  # 1.0: flat
        summary[f"peak_rss_growth_mib_{key}"] = {
            f"x1 to x{factor}": round(rss[factor] - rss[1], 1) for factor in SIZES[1:]
        }
    print(json.dumps(summary, indent=2))
    out = ROOT / "bench" / "results" / "audit.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"runs": runs, "summary": summary}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
