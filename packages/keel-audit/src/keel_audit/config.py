"""`[tool.keel-audit]` in the audited project's pyproject.toml.

[tool.keel-audit]
select = ["KA1", "KA201"]          # code prefixes to run (default: all)
ignore = ["KA702"]                 # code prefixes never reported
src = ["backend"]                  # extra source roots (module names start below them)
exclude = ["migrations/versions"]  # path prefixes or globs not audited
max-file-bytes = 2000000           # larger files are reported as skipped (generated)
fail-on = "warning"                # default for --fail-on
fail-under = 60                    # default for --fail-under

[tool.keel-audit.per-file-ignores]
"scripts/*" = ["KA201"]

[tool.keel-audit.severity]
KA602 = "info"
"""

from __future__ import annotations

import fnmatch
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from keel_audit.model import Severity


class ConfigError(ValueError):
    """A bad `[tool.keel-audit]` value: a usage error (exit code 2)."""


def read_pyproject(root: Path) -> dict[str, Any]:
    path = root / "pyproject.toml"
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return {}


def _strings(table: dict[str, Any], key: str) -> tuple[str, ...]:
    value = table.get(key, [])
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ConfigError(f"[tool.keel-audit] {key} must be a list of strings")
    return tuple(value)


def _matches(relpath: str, pattern: str) -> bool:
    pattern = pattern.rstrip("/")
    return (
        relpath == pattern
        or relpath.startswith(pattern + "/")
        or fnmatch.fnmatchcase(relpath, pattern)
    )


@dataclass(frozen=True)
class Config:
    select: tuple[str, ...] = ()
    ignore: tuple[str, ...] = ()
    per_file_ignores: tuple[tuple[str, tuple[str, ...]], ...] = ()
    severity: tuple[tuple[str, Severity], ...] = ()
    src: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    max_file_bytes: int = 2_000_000
    fail_on: Severity | None = None
    fail_under: int | None = None
    _severity_map: dict[str, Severity] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        self._severity_map.update(self.severity)

    @classmethod
    def from_pyproject(cls, pyproject: dict[str, Any]) -> Config:
        table = pyproject.get("tool", {}).get("keel-audit", {})
        if not isinstance(table, dict):
            raise ConfigError("[tool.keel-audit] must be a table")
        known = {
            "select", "ignore", "per-file-ignores", "severity", "src", "exclude",
            "max-file-bytes", "fail-on", "fail-under",
        }  # fmt: skip
        unknown = sorted(set(table) - known)
        if unknown:
            raise ConfigError(f"[tool.keel-audit] unknown key(s): {', '.join(unknown)}")
        per_file = table.get("per-file-ignores", {})
        severities = table.get("severity", {})
        if not isinstance(per_file, dict) or not isinstance(severities, dict):
            raise ConfigError("[tool.keel-audit] per-file-ignores and severity must be tables")
        try:
            severity = tuple(
                sorted((code, Severity.parse(str(label))) for code, label in severities.items())
            )
            fail_on = Severity.parse(table["fail-on"]) if "fail-on" in table else None
        except ValueError as error:
            raise ConfigError(f"[tool.keel-audit] {error}") from None
        max_bytes = table.get("max-file-bytes", 2_000_000)
        fail_under = table.get("fail-under")
        if not isinstance(max_bytes, int) or max_bytes <= 0:
            raise ConfigError("[tool.keel-audit] max-file-bytes must be a positive integer")
        if fail_under is not None and not isinstance(fail_under, int):
            raise ConfigError("[tool.keel-audit] fail-under must be an integer")
        return cls(
            select=_strings(table, "select"),
            ignore=_strings(table, "ignore"),
            per_file_ignores=tuple(
                sorted((pattern, _strings(per_file, pattern)) for pattern in per_file)
            ),
            severity=severity,
            src=_strings(table, "src"),
            exclude=_strings(table, "exclude"),
            max_file_bytes=max_bytes,
            fail_on=fail_on,
            fail_under=fail_under,
        )

    def is_excluded(self, relpath: str) -> bool:
        return any(_matches(relpath, pattern) for pattern in self.exclude)

    def enabled(self, code: str) -> bool:
        if self.select and not any(code.startswith(prefix) for prefix in self.select):
            return False
        return not any(code.startswith(prefix) for prefix in self.ignore)

    def ignored_in(self, code: str, relpath: str) -> bool:
        return any(
            _matches(relpath, pattern) and any(code.startswith(c) for c in codes)
            for pattern, codes in self.per_file_ignores
        )

    def severity_for(self, code: str, default: Severity) -> Severity:
        return self._severity_map.get(code, default)
