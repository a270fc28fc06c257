"""Per-module facts: what a project-level rule or the score keeps of a module's tree.

An extractor is a function of one module alone (its tree, lines, imports, path), never of
the project: so it can run while the module's tree is in memory and its compact answer
(locations, names, counts) outlive the tree. Project-level rules ask `module_fact(module,
extractor)` instead of reading nodes, and decide from the facts of every module.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from keel_audit.source import Module

T = TypeVar("T")


def module_fact(module: Module, extract: Callable[[Module], T]) -> T:
    """`extract(module)`, computed once per module and kept with it."""
    facts: dict[Callable[[Module], Any], Any] = module.facts
    if extract not in facts:
        facts[extract] = extract(module)
    found: T = facts[extract]
    return found
