"""A tiny Keel-shaped source tree in the layout of issue 14's contract, for the mechanics of
`keel new project` without the weight (or the in-between state) of the real tree."""

from __future__ import annotations

import subprocess
from pathlib import Path

FEATURES: dict[str, str | None] = {
    "catalog": "()",
    "orders": '("catalog", "payments")',
    "payments": "()",
    "files": "()",
    "jobs": "()",
    "imports": '("catalog", "files", "jobs")',
    "realtime": None,  # no `requires` at all
}

FILES = {
    "pyproject.toml": (
        '[project]\nname = "keel"\n\n[project.scripts]\nkeel = "keel.cli:main"\n\n'
        "[tool.keel-audit]\nexclude = []\n"
    ),
    "README.md": (
        "# Keel\n\nKeel is the intro that the generated head replaces.\n\n## Quick start\n\n"
        "Run `keel serve`.\n\n<!-- feature: catalog -->\n## Catalog\nProducts.\n"
        "<!-- /feature: catalog -->\n\n<!-- keel-only -->\n## Starting a new project\n"
        "<!-- /keel-only -->\n\n## Errors\nOne model.\n"
    ),
    ".env.example": (
        "KEEL_ENVIRONMENT=development\n# feature: realtime\nKEEL_WS=1\n# /feature: realtime\n"
    ),
    "src/keel/__init__.py": '"""Keel."""\n',
    "src/keel/cli.py": '"""The `keel` command."""\n\nfrom keel.core import config\n',
    "src/keel/core/config.py": 'ENV_PREFIX = "KEEL_"\n',
    "src/keel/scaffold/project.py": '"""Only Keel has this."""\n',
    "src/keel/features/registry.py": (
        '"""Features in mounting order."""\n\nENABLED: tuple[str, ...] = (\n'
        + "".join(f'    "{name}",\n' for name in ("health", "auth", "users", *FEATURES))
        + ")\n"
    ),
    "tests/scaffold/test_new_project_x.py": "",
    "packages/keel-audit/pyproject.toml": '[project]\nname = "keel-audit"  # Keel\n',
    "docs/new-project.md": "# Starting a project from Keel\n",
}


def build(root: Path) -> Path:
    """Write the tree, commit it, and return its root."""
    files = dict(FILES)
    for name, requires in FEATURES.items():
        files[f"src/keel/features/{name}/__init__.py"] = f'"""The {name} feature."""\n'
        needs = "" if requires is None else f", requires={requires}"
        files[f"src/keel/features/{name}/feature.py"] = (
            f'FEATURE = Feature(name="{name}", router=None{needs})\n'
        )
        files[f"tests/features/{name}/test_{name}.py"] = f"from keel.features.{name} import x\n"
        files[f"docs/features/{name}.md"] = f"# {name}\n"
    for path, text in files.items():
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
    (root / "var.bin").write_bytes(b"\x00\xffkeel\n# feature: catalog\n")
    script = root / ".ci" / "run"
    script.parent.mkdir()
    script.write_text("#!/bin/sh\nexport KEEL_TEST=1\n", encoding="utf-8")
    script.chmod(0o755)
    git = ["git", "-C", str(root), "-c", "user.name=t", "-c", "user.email=t@example.invalid"]
    subprocess.run([*git[:3], "init", "-q"], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-qm", "fixture"], check=True)
    return root
