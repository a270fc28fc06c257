"""The audited project's own calls, resolved across its modules, for rules that follow them.

For every function the project defines, `CallGraph.calls(qualname)` lists the calls made
in its body (not in nested defs, lambdas or classes: those run later, or elsewhere), each
resolved to a dotted name where the source says which function it is:

* through imports, including re-exports (`from app.services import get_user` where the
  package's `__init__` imports it from `.users`);
* `self.method()` / `cls.method()` inside a class, to that class's method;
* a module alias (`from app import helpers; helpers.fetch_profile()`).

Calls on objects whose type the source does not state stay unresolved: precision first.
Everything is computed lazily per function and cached, so a rule pays only for what it asks.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from keel_audit.facts import extractor, module_fact
from keel_audit.source import FunctionNode, Module, Project, scoped_walk


@dataclass(frozen=True)
class CallSite:
    node: ast.Call
    target: str | None  # dotted name: a project function, or an outside one ("requests.get")
    internal: bool  # target is a function of the audited project
    awaited: bool  # awaited, or entered by `async with` / iterated by `async for`


@dataclass
class FunctionInfo:
    qualname: str
    module: Module
    node: FunctionNode
    calls: list[CallSite] = field(default_factory=list)
    body: list[ast.AST] = field(default_factory=list)  # body_nodes(node), computed once

    @property
    def is_async(self) -> bool:
        return isinstance(self.node, ast.AsyncFunctionDef)

    @property
    def short_name(self) -> str:
        return self.qualname.removeprefix(self.module.name + ".")


def body_nodes(function: FunctionNode | ast.Lambda) -> Iterator[ast.AST]:
    """Every node in the function's own body: nested functions, lambdas and classes are
    left out (their code runs when they are called, not here); decorators and defaults of
    nested defs run here and are kept. (`Module.function_body` has it precomputed.)"""
    body = function.body if isinstance(function.body, list) else [function.body]
    return scoped_walk(list(reversed(body)))


def awaited_ids(nodes: list[ast.AST]) -> set[int]:
    """Ids of the expressions in a body that are awaited, entered by `async with` or
    iterated by `async for` (a call there does not block)."""
    awaited: set[int] = set()
    for child in nodes:
        if isinstance(child, ast.Await) and isinstance(child.value, ast.Call):
            awaited.add(id(child.value))
        elif isinstance(child, ast.AsyncWith):
            awaited.update(id(item.context_expr) for item in child.items)
        elif isinstance(child, ast.AsyncFor | ast.comprehension) and (
            isinstance(child, ast.AsyncFor) or child.is_async
        ):
            awaited.add(id(child.iter))
    return awaited


@extractor()
def function_names(module: Module) -> tuple[str, ...]:
    """The qualified names of the module's functions (`Project.functions`' keys), a fact."""
    return module.function_names


def project_function_names(project: Project) -> dict[str, None]:
    """Every function's qualified name, in `Project.functions`' order, from the facts."""
    names: dict[str, None] = {}
    for module in project.modules:
        names.update(dict.fromkeys(module_fact(module, function_names)))
    return names


class CallGraph:
    def __init__(self, project: Project, functions: Mapping[str, Any] | None = None) -> None:
        """`functions`: the project's functions by qualified name, for resolving names
        (default: their names, from the modules' facts; the blocking analysis passes its
        own facts). `info` reads the defs themselves (`Project.functions`)."""
        self.project = project
        self.functions: Mapping[str, Any] = (
            project_function_names(project) if functions is None else functions
        )
        self._info: dict[str, FunctionInfo] = {}
        self._canonical: dict[str, str] = {}

    @classmethod
    def of(cls, project: Project) -> CallGraph:
        """One graph per project, shared by every rule that asks."""
        graph = project.__dict__.get("_callgraph")
        if not isinstance(graph, CallGraph):
            graph = cls(project)
            project.__dict__["_callgraph"] = graph
        return graph

    def canonical(self, dotted: str, depth: int = 0) -> str:
        """Follow re-exports: `app.services.get_user` → `app.services.users.get_user` when
        `app/services/__init__.py` imports it from `.users`."""
        if dotted in self.functions or depth > 5:
            return dotted
        cached = self._canonical.get(dotted)
        if cached is not None:
            return cached
        result = dotted
        parts = dotted.split(".")
        for cut in range(len(parts) - 1, 0, -1):
            module = self.project.module(".".join(parts[:cut]))
            if module is None:
                continue
            head, rest = parts[cut], parts[cut + 1 :]
            imported = module.imports.get(head)
            if imported is not None and imported != dotted:
                result = self.canonical(".".join([imported, *rest]), depth + 1)
            break
        self._canonical[dotted] = result
        return result

    def resolve(self, module: Module, func: ast.expr, qualname: str | None = None) -> str | None:
        """The dotted name a call's function expression refers to (see the module doc)."""
        if (
            qualname
            and isinstance(func, ast.Attribute)
            and isinstance(func.value, ast.Name)
            and func.value.id in {"self", "cls"}
        ):
            owner = qualname.rsplit(".", 1)[0]
            candidate = f"{owner}.{func.attr}"
            return candidate if candidate in self.functions else None
        name = module.qualified_name(func)
        return self.canonical(name) if name else None

    def info(self, qualname: str) -> FunctionInfo | None:
        cached = self._info.get(qualname)
        if cached is not None:
            return cached
        entry = self.project.functions.get(qualname)
        if entry is None:
            return None
        module, node = entry
        info = FunctionInfo(qualname, module, node)
        nodes = info.body = module.function_body(node)
        awaited = awaited_ids(nodes)
        for child in nodes:
            if isinstance(child, ast.Call):
                target = self.resolve(module, child.func, qualname)
                info.calls.append(
                    CallSite(child, target, target in self.functions, id(child) in awaited)
                )
        self._info[qualname] = info
        return info

    def all(self) -> Iterator[FunctionInfo]:
        for qualname in self.functions:
            info = self.info(qualname)
            if info is not None:
                yield info
