"""Every place `keel new project` depends on how Keel lays out its features, in one module.

The layout is the one issue 14 part 1 defines (summarised in docs/new-project.md): a feature
is `src/keel/features/<name>/` with a `feature.py` defining
`FEATURE = Feature(..., requires=(...))`, one line per feature in
`src/keel/features/registry.py`, its tests in `tests/features/<name>/`, its benchmarks in
`bench/features/<name>/`, its docs in `docs/features/<name>.md`, its TypeScript client smoke
script in `clients/typescript/src/features/<name>/`, and marked blocks elsewhere. When the layout
changes, this module is the only one to change: `feature_requirements`, `feature_paths`,
`drop_registry_lines`, `drop_settings_lines`, `remove_features`, `KEEL_ONLY`, `NOT_RENAMED`,
`FEATURE_OPTIONS` and `OPTIONAL` are the whole interface.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

from keel.scaffold.layout import owned_paths

PACKAGE = "keel"
"""The package the source tree ships; the generator renames it."""

FEATURE_OPTIONS: dict[str, tuple[str, ...]] = {
    "catalog": ("catalog",),
    "orders": ("orders", "payments"),
    "files": ("files",),
    "jobs": ("jobs", "imports"),
    "realtime": ("realtime",),
}
"""What a user chooses (`--with`/`--without`) and the feature packages each choice keeps:
orders and payments are one unit, and imports comes with jobs (when its other needs stay)."""

OPTIONAL = frozenset(package for packages in FEATURE_OPTIONS.values() for package in packages)
"""Every optional feature package; the rest (health, auth, users, core) is always there."""

REGISTRY = f"src/{PACKAGE}/features/registry.py"
SETTINGS = f"src/{PACKAGE}/settings.py"
"""The settings class composed of core's and each feature's (one import and one base each)."""

KEEL_ONLY: tuple[str, ...] = (
    f"src/{PACKAGE}/scaffold/project",  # project.py, project_cli.py, project_layout.py
    f"src/{PACKAGE}/scaffold/rename.py",
    f"src/{PACKAGE}/scaffold/templates/project/",
    "tests/scaffold/test_new_project",
    "tests/scaffold/new_project",
    ".github/workflows/nightly.yml",
)
"""Path prefixes that make sense only in Keel itself (the project generator and its nightly
check): a generated project keeps `new feature`, not `new project`. Blocks marked
`keel-only` in other files go the same way."""

NOT_RENAMED: tuple[str, ...] = ("packages/keel-audit/", "docs/new-project.md", "uv.lock")
"""Copied as they are: the auditor is its own distribution, the upgrade guide speaks of Keel,
and the lock file is written afresh by `uv lock`."""


def feature_requirements(root: Path, name: str) -> tuple[str, ...]:
    """What `name` requires, read (never imported) from its `FEATURE = Feature(requires=...)`;
    nothing for a feature without a `feature.py`."""
    module = root / "src" / PACKAGE / "features" / name / "feature.py"
    if module.is_file():
        for node in ast.walk(ast.parse(module.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "Feature":
                for keyword in node.keywords:
                    if keyword.arg == "requires":
                        value = ast.literal_eval(keyword.value)
                        return tuple(str(item) for item in value)
                return ()
    return ()


def feature_paths(name: str) -> tuple[str, ...]:
    """Path prefixes (relative to the root) that belong to feature `name` and leave with it:
    the feature generator's own definition (`layout.owned_paths`), kept in generated projects."""
    return owned_paths(PACKAGE, name)


def drop_registry_lines(text: str, names: set[str]) -> str:
    """The registry without the lines naming `names` (one `"<name>",` line per feature)."""
    line = re.compile(r'^\s*"(?P<name>[a-z_][a-z0-9_]*)",\s*(#.*)?$')
    kept = [
        row
        for row in text.splitlines(keepends=True)
        if not ((match := line.match(row)) and match["name"] in names)
    ]
    return "".join(kept)


def drop_settings_lines(text: str, names: set[str]) -> str:
    """`keel/settings.py` without the features in `names`: the line importing each one's
    settings class (`from keel.features.NAME.settings import NameSettings`) and the line
    naming that class among `Settings`' bases (one per line)."""
    importing = re.compile(
        rf"^from {PACKAGE}\.features\.(?P<name>[a-z_][a-z0-9_]*)\.settings import (?P<kind>\w+)\s*$"
    )
    gone: set[str] = set()
    kept: list[str] = []
    for row in text.splitlines(keepends=True):
        match = importing.match(row)
        if match and match["name"] in names:
            gone.add(match["kind"])
        else:
            kept.append(row)
    base = re.compile(r"^\s+(?P<kind>\w+),\s*$")
    return "".join(
        row for row in kept if not ((match := base.match(row)) and match["kind"] in gone)
    )


_MARKER = re.compile(
    r"^\s*(?:<!--|#)\s*(?P<close>/)?(?:feature:\s*(?P<name>[a-z_][a-z0-9_]*)|(?P<only>keel-only))"
    r"\s*(?:-->)?\s*$"
)


def drop_marked_blocks(text: str, names: set[str], *, where: str = "") -> str:
    """`text` without its blocks marked for the features in `names` and its `keel-only` blocks.

    A block runs from `<!-- feature: NAME -->` (or `# feature: NAME`) to the matching
    `<!-- /feature: NAME -->` (or `# /feature: NAME`), both lines included; the markers of the
    features that stay are kept, so the next generation can still find them.
    """
    kept: list[str] = []
    open_blocks: list[tuple[str, int]] = []
    after_a_block = False  # a blank line on both sides of a dropped block: keep one
    for number, row in enumerate(text.splitlines(keepends=True), start=1):
        match = _MARKER.match(row)
        dropping = any(name in names or name == "keel-only" for name, _ in open_blocks)
        if match:
            label = "keel-only" if match["only"] else match["name"]
            if not match["close"]:
                open_blocks.append((label, number))
            elif not open_blocks or open_blocks[-1][0] != label:
                raise ValueError(f"{where}:{number}: closing marker for {label!r} has no opening")
            dropping = dropping or label in names or label == "keel-only"
            if match["close"]:
                open_blocks.pop()
        if dropping:
            after_a_block = True
            continue
        if after_a_block and not row.strip() and (not kept or not kept[-1].strip()):
            continue
        after_a_block = False
        kept.append(row)
    if open_blocks:
        label, number = open_blocks[-1]
        raise ValueError(f"{where}:{number}: marker for {label!r} is never closed")
    return "".join(kept)


def remove_features(files: dict[str, bytes], dropped: set[str]) -> dict[str, bytes]:
    """The source tree (path → content) without the features in `dropped` and without what
    only Keel itself needs: their paths, their registry and settings lines and their marked
    blocks."""
    prefixes = KEEL_ONLY + tuple(path for name in dropped for path in feature_paths(name))
    result: dict[str, bytes] = {}
    for path, content in files.items():
        if path.startswith(prefixes):
            continue
        if path == REGISTRY:
            content = drop_registry_lines(content.decode("utf-8"), dropped).encode("utf-8")
        if path == SETTINGS:
            content = drop_settings_lines(content.decode("utf-8"), dropped).encode("utf-8")
        if b"feature:" in content or b"keel-only" in content:
            try:
                text = content.decode("utf-8")
            except UnicodeDecodeError:
                pass
            else:
                content = drop_marked_blocks(text, dropped, where=path).encode("utf-8")
        result[path] = content
    return result
