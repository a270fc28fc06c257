"""(being written)"""

from __future__ import annotations

from keel_audit.rules.base import Rule

RULES: tuple[type[Rule], ...] = ()
