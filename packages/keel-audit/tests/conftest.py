"""Fixtures shared by keel-audit's tests: a project written to a temporary directory."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from keel_audit.model import Finding
from keel_audit.project import run_audit
from keel_audit.source import Project

Files = dict[str, str]


def write_files(root: Path, files: Files) -> Path:
    for relpath, text in files.items():
        path = root / relpath
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text), encoding="utf-8")
    return root


@pytest.fixture
def make_project(tmp_path: Path) -> Callable[[Files], Project]:
    """Write `{relpath: source}` (dedented) under a fresh directory and load it."""

    def make(files: Files) -> Project:
        return Project.load(write_files(tmp_path, files))

    return make


@pytest.fixture
def audit(tmp_path: Path) -> Callable[..., list[Finding]]:
    """Write the files and run the whole engine (config, suppressions) over them; keyword
    `codes=("KA201",)` keeps only findings whose code starts with one of those prefixes."""

    def run(files: Files, codes: tuple[str, ...] = ()) -> list[Finding]:
        result = run_audit(write_files(tmp_path, files))
        return [f for f in result.findings if not codes or f.code.startswith(codes)]

    return run
