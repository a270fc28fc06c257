"""Taking optional features out of a copy of the project: what "removable" means, as code.

`remove_features(root, names)` deletes, under `root`, each named feature and every feature
that requires one of them: its package, its line in the registry, its tests
(`tests/features/<name>/`), its doc (`docs/features/<name>.md`) and the blocks marked for it
in other files (`<!-- feature: NAME -->` … `<!-- /feature: NAME -->` in Markdown,
`# feature: NAME` … `# /feature: NAME` in `.env.example`, compose files and the like).
Nothing is imported from `root`: requirements are read from each `feature.py` as text, so it
works on any Keel-shaped tree (the project generator uses it; so does
`tests/support/without_feature.py`, which proves each optional feature removable).
"""

from __future__ import annotations

import ast
import re
import shutil
from pathlib import Path

FIXED_CORE = frozenset({"health", "auth", "users"})
"""Never removable: accounts and the operations endpoints."""

MARKED_FILES = ("README.md", ".env.example", "docker-compose.yml", "docs/*.md")
"""Where feature blocks are marked (the features' own docs go whole)."""


def remove_features(root: Path, names: set[str], package: str = "keel") -> list[str]:
    """Delete `names` and what requires them from the tree at `root`; return what went, in
    registry order. Refuses a fixed-core or unknown name (ValueError)."""
    features_dir = root / "src" / package / "features"
    registry = features_dir / "registry.py"
    enabled = _enabled(registry)
    unknown = names - set(enabled)
    if unknown or names & FIXED_CORE:
        raise ValueError(f"not removable: {sorted(unknown | (names & FIXED_CORE))}")
    requires = {name: _requires(features_dir / name / "feature.py") for name in enabled}
    going = set(names)
    while extra := {n for n in enabled if n not in going and set(requires[n]) & going}:
        going |= extra
    removed = [name for name in enabled if name in going]
    text = registry.read_text(encoding="utf-8")
    for name in removed:
        shutil.rmtree(features_dir / name)
        shutil.rmtree(root / "tests" / "features" / name, ignore_errors=True)
        (root / "docs" / "features" / f"{name}.md").unlink(missing_ok=True)
        text = text.replace(f'    "{name}",\n', "")
    registry.write_text(text, encoding="utf-8")
    for pattern in MARKED_FILES:
        for path in root.glob(pattern):
            _drop_marked_blocks(path, removed)
    return removed


def _enabled(registry: Path) -> list[str]:
    block = re.search(r"ENABLED[^=]*= \((.*?)\n\)", registry.read_text(encoding="utf-8"), re.S)
    if block is None:
        raise ValueError(f"no ENABLED tuple in {registry}")
    return re.findall(r'^    "(\w+)",$', block.group(1), re.M)


def _requires(feature_py: Path) -> tuple[str, ...]:
    """The `requires=(...)` of `FEATURE = Feature(...)`, read without importing it."""
    for node in ast.walk(ast.parse(feature_py.read_text(encoding="utf-8"))):
        if isinstance(node, ast.keyword) and node.arg == "requires":
            value = ast.literal_eval(node.value)
            return tuple(value)
    return ()


def _drop_marked_blocks(path: Path, names: list[str]) -> None:
    text = path.read_text(encoding="utf-8")
    for name in names:
        for opening, closing in (
            (f"<!-- feature: {name} -->", f"<!-- /feature: {name} -->"),
            (f"# feature: {name}", f"# /feature: {name}"),
        ):
            pattern = re.escape(opening) + r".*?" + re.escape(closing) + r"[^\n]*\n?"
            text = re.sub(r"[ \t]*" + pattern, "", text, flags=re.S)
    path.write_text(text, encoding="utf-8")
