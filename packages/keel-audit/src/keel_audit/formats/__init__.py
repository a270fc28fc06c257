"""Output formats: each `render(result) -> str`, deterministic for the same input."""

from __future__ import annotations

from collections.abc import Callable

from keel_audit.formats import console, github, jsonout, sarif
from keel_audit.project import AuditResult

FORMATS: dict[str, Callable[[AuditResult], str]] = {
    "console": console.render,
    "json": jsonout.render,
    "sarif": sarif.render,
    "github": github.render,
}
