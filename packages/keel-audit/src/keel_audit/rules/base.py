"""What every rule is: a stable code, a severity, documented why and fix, and `check`.

A rule reads a `Project` (parsed modules, pyproject, other files) and yields `Finding`s. It
never imports or runs the audited code. Codes are "KA" + 3 digits, grouped by topic:

    KA1xx lifecycle/resources   KA2xx async/blocking   KA3xx API/HTTP   KA4xx security
    KA5xx database/SQL          KA6xx tests            KA7xx observability/ops
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from typing import ClassVar

from keel_audit.model import Finding, Location, Severity, Step
from keel_audit.source import Module, Project


class Rule:
    code: ClassVar[str]
    name: ClassVar[str]  # kebab-case, e.g. "engine-at-import"
    severity: ClassVar[Severity]
    summary: ClassVar[str]  # one line
    why: ClassVar[str]  # why it matters in production (a paragraph)
    fix: ClassVar[str]  # how to fix it (a paragraph, may include a short code sample)
    # `check_module` reads other modules too (so it cannot run while the project loads).
    reads_other_modules: ClassVar[bool] = False

    @classmethod
    def streams(cls) -> bool:
        """Whether the rule is `check_module` on each module alone: then the audit runs it
        on each module as it is parsed, before the module's tree is dropped."""
        return cls.check is Rule.check and not cls.reads_other_modules

    def check(self, project: Project) -> Iterator[Finding]:
        """Yield this rule's findings. The default runs `check_module` on every module."""
        for module in project.modules:
            yield from self.check_module(project, module)

    def check_module(self, project: Project, module: Module) -> Iterator[Finding]:
        return iter(())

    def finding(
        self,
        module: Module | str,
        node: ast.AST | int | Location,
        message: str,
        chain: tuple[Step, ...] = (),
    ) -> Finding:
        """A finding with this rule's code and severity at `node` (or a line number, or a
        location already worked out) of `module` (or a relative path, for findings in
        non-Python files)."""
        where = node if isinstance(node, Location) else location(module, node)
        return Finding(self.code, self.severity, where, message, chain)


def location(module: Module | str, node: ast.AST | int) -> Location:
    """Where `node` starts; the column counts characters (ast counts UTF-8 bytes)."""
    if isinstance(node, int):
        return Location(module if isinstance(module, str) else module.path, node)
    line, col = getattr(node, "lineno", 1), getattr(node, "col_offset", 0)
    if isinstance(module, str):
        return Location(module, line, col)
    return location_at(module, line, col)


def location_at(module: Module, line: int, col: int) -> Location:
    """`location` from a line and an `ast` column (UTF-8 bytes), once the node is gone."""
    text = module.line(line)
    if col and not text.isascii():
        col = len(text.encode("utf-8")[:col].decode("utf-8", errors="ignore"))
    return Location(module.path, line, col)
