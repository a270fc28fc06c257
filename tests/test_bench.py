"""bench/run.py finds its scenarios in the feature folders present, naming no feature itself.

Each check imports `run` in a subprocess of its own, as `python bench/run.py` does (from its
directory, with `bench/` on `sys.path`), so nothing of the benchmarks enters this process's
modules, and no server is started. A project generated without a feature has no
`bench/features/<name>/`, which is what the copies of `run.py` below stand for.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from keel.features.registry import ENABLED

BENCH = Path(__file__).resolve().parents[1] / "bench"

LIST_SCENARIOS = """
import json, run
print(json.dumps([[s.name for s in run.CORE_SCENARIOS], [s.name for s in run.scenarios()]]))
"""

ALPHA = """
from run import Scenario

SCENARIOS = (
    Scenario(
        name="alpha_page", description="GET /api/v1/alpha", keel_path="/api/v1/alpha",
        baseline_path="/api/v1/alpha", target_ratio=0.5,
    ),
)
"""


def python_in(bench: Path, code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code], cwd=bench, capture_output=True, text=True, timeout=120
    )


def scenario_names(bench: Path) -> tuple[list[str], list[str]]:
    """(core's scenarios, every scenario found) as `run` sees them in `bench`."""
    done = python_in(bench, LIST_SCENARIOS)
    assert done.returncode == 0, done.stderr
    core, found = json.loads(done.stdout)
    return core, found


@pytest.fixture
def bare_bench(tmp_path: Path) -> Path:
    """`run.py` alone, with an empty `features/`: a project with no feature that benchmarks."""
    bench = tmp_path / "bench"
    (bench / "features").mkdir(parents=True)
    shutil.copy(BENCH / "run.py", bench / "run.py")
    return bench


def add_feature(bench: Path, name: str, scenarios: str | None) -> Path:
    folder = bench / "features" / name
    folder.mkdir()
    (folder / "script.py").write_text('"""A feature\'s own benchmark script."""\n')
    if scenarios is not None:
        (folder / "scenarios.py").write_text(scenarios)
    return folder


def test_the_repository_s_scenarios_are_core_s_then_each_present_feature_s() -> None:
    """Whatever the features of this checkout: core's first, then every folder's, in order."""
    listing = """
import json, importlib, run
from pathlib import Path
folders = sorted(path.parent.name for path in Path("features").glob("*/scenarios.py"))
print(json.dumps([folders, [[s.name for s in importlib.import_module(
    f"features.{folder}.scenarios").SCENARIOS] for folder in folders]]))
"""
    done = python_in(BENCH, listing)
    assert done.returncode == 0, done.stderr
    folders, per_folder = json.loads(done.stdout)
    core, found = scenario_names(BENCH)
    assert core[:2] == ["health", "users_me"]  # core's own: a project without features has them
    assert found == core + [name for names in per_folder for name in names]
    assert all(per_folder), f"a scenarios.py without scenarios: {folders}"


def test_every_benchmark_folder_belongs_to_an_enabled_feature() -> None:
    """A feature removed by hand must take `bench/features/<name>/` with it."""
    features = BENCH / "features"  # absent from a project generated without any feature
    folders = {path.name for path in features.glob("*") if path.is_dir()}
    folders.discard("__pycache__")
    assert folders <= set(ENABLED), sorted(folders - set(ENABLED))


def test_a_present_feature_s_scenarios_are_found(bare_bench: Path) -> None:
    add_feature(bare_bench, "alpha", ALPHA)
    add_feature(bare_bench, "beta", None)  # scripts only: no scenario, nothing to find
    core, found = scenario_names(bare_bench)
    assert found == [*core, "alpha_page"]


def test_a_missing_feature_s_scenarios_are_absent_and_cannot_be_asked_for(
    bare_bench: Path,
) -> None:
    shutil.rmtree(add_feature(bare_bench, "alpha", ALPHA))
    core, found = scenario_names(bare_bench)
    assert found == core
    done = python_in(bare_bench, "import run; run.parse_arguments(['--only', 'alpha_page'])")
    assert done.returncode == 2
    assert "invalid choice: 'alpha_page'" in done.stderr


def test_a_scenarios_module_without_scenarios_is_refused(bare_bench: Path) -> None:
    add_feature(bare_bench, "alpha", "SCENARIO = ()\n")  # a typo for SCENARIOS
    done = python_in(bare_bench, LIST_SCENARIOS)
    assert done.returncode != 0
    assert "alpha/scenarios.py must define SCENARIOS, a tuple of run.Scenario" in done.stderr


def test_a_scenario_name_used_by_two_features_is_refused(bare_bench: Path) -> None:
    add_feature(bare_bench, "alpha", ALPHA)
    add_feature(bare_bench, "beta", ALPHA)
    done = python_in(bare_bench, LIST_SCENARIOS)
    assert done.returncode != 0
    assert "scenario names used twice: alpha_page" in done.stderr
