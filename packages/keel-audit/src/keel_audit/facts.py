"""Per-module facts: what a project-level rule or the score keeps of a module's tree.

An extractor is a function of one module alone (its tree, lines, imports, path), never of
the project: so it can run while the module's tree is in memory and its compact answer
(locations, names, counts; never a node) outlives the tree. Project-level rules ask
`module_fact(module, extractor)` instead of reading nodes, and decide from the facts of
every module. Extractors registered with `@extractor` are all run by `take_facts` as each
module is parsed, after which the audit drops the tree (`project._audit`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from keel_audit.source import Module

T = TypeVar("T")
Extractor = Callable[[Module], Any]
# Each extractor, with the modules it is asked about (None: all of them).
EXTRACTORS: list[tuple[Extractor, Callable[[Module], bool] | None]] = []


def extractor(
    when: Callable[[Module], bool] | None = None,
) -> Callable[[Callable[[Module], T]], Callable[[Module], T]]:
    """Register an extractor to run while a module's tree is in memory, on the modules
    `when` accepts: the ones its callers ask about (the others would be wasted work)."""

    def register(function: Callable[[Module], T]) -> Callable[[Module], T]:
        EXTRACTORS.append((function, when))
        return function

    return register


def is_test(module: Module) -> bool:
    return module.is_test


def is_not_test(module: Module) -> bool:
    return not module.is_test


def module_fact(module: Module, extract: Callable[[Module], T]) -> T:
    """`extract(module)`, computed once per module and kept with it."""
    facts: dict[Extractor, Any] = module.facts
    if extract not in facts:
        facts[extract] = extract(module)
    found: T = facts[extract]
    return found


def take_facts(module: Module) -> None:
    """Every registered fact of `module` (so its tree can go)."""
    for extract, when in EXTRACTORS:
        if when is None or when(module):
            module_fact(module, extract)
