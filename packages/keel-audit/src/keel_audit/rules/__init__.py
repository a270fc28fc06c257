"""The rule registry. Each topic module exports `RULES`; add a module here to register it."""

from __future__ import annotations

from keel_audit.rules import api, blocking, lifecycle, ops, security, sql, testing
from keel_audit.rules.base import Rule

_MODULES = (
    lifecycle,
    blocking,
    api,
    ops,
    security,
    sql,
    testing,
)

ALL_RULES: tuple[type[Rule], ...] = tuple(
    sorted((rule for module in _MODULES for rule in module.RULES), key=lambda rule: rule.code)
)
RULES_BY_CODE: dict[str, type[Rule]] = {rule.code: rule for rule in ALL_RULES}

__all__ = ["ALL_RULES", "RULES_BY_CODE", "Rule"]
