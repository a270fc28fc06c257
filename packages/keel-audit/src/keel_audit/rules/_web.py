"""What the API, security, SQL, test and ops rules need to know about a FastAPI project.

Routes (decorated handlers and `add_api_route` calls), keyword arguments, literal values,
the project functions a call reaches, and the default of a settings field (`settings.X`
resolved to `X: list[str] = ["*"]` on a `BaseSettings` subclass). All of it is read from the
syntax tree; nothing is imported or executed.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from keel_audit.callgraph import CallGraph, body_nodes
from keel_audit.facts import extractor, module_fact
from keel_audit.source import FunctionNode, Module, Project

HTTP_METHODS = frozenset({"get", "post", "put", "patch", "delete", "head", "options"})
_ROUTE_FACTORIES = frozenset({"fastapi.FastAPI", "fastapi.APIRouter", "fastapi.routing.APIRouter"})
# Directories that hold samples, operator scripts and harnesses rather than the served
# product (a library's examples, one-off scripts, load-test benches).
SAMPLE_DIRS = frozenset(
    {"examples", "example", "docs", "docs_src", "tutorial", "scripts", "bench", "benchmarks"}
)


@dataclass(frozen=True)
class Route:
    """A route, kept as a fact (`module_routes`): the handler and the decorator are read
    from the module's tree when asked for, by their place, so a route holds no node."""

    module: Module
    place: tuple[int, int]  # the handler def's line and column
    methods: frozenset[str]
    path: str | None
    decorator_index: int | None  # which of the def's decorators; None for add_api_route
    # Its response model or return annotation is a list (`list[...]`, `Sequence[...]`):
    # known while the tree is read, so KA303 reads again only the handlers that list.
    lists: bool = False

    @property
    def func(self) -> FunctionNode:
        return self.module.function_at(*self.place)

    @property
    def decorator(self) -> ast.Call | None:
        if self.decorator_index is None:
            return None
        decorator = self.func.decorator_list[self.decorator_index]
        return decorator if isinstance(decorator, ast.Call) else None

    def kwarg(self, name: str) -> ast.expr | None:
        return kwarg(self.decorator, name) if self.decorator is not None else None


def kwarg(call: ast.Call, name: str) -> ast.expr | None:
    for keyword in call.keywords:
        if keyword.arg == name:
            return keyword.value
    return None


def has_kwargs_splat(call: ast.Call) -> bool:
    return any(keyword.arg is None for keyword in call.keywords)


def literal(node: ast.expr | None) -> object:
    """The value of a literal expression, or `NotImplemented` when it is not one."""
    if node is None:
        return NotImplemented
    try:
        return ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return NotImplemented


def str_value(node: ast.expr | None) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def nodes_of(module: Module, *kinds: type[ast.AST]) -> list[ast.AST]:
    """The module's nodes of these exact classes, in source order, from the shared index
    (`Module.nodes`), instead of a fresh `ast.walk` per rule."""
    if len(kinds) == 1:
        return list(module.nodes(kinds[0]))
    found = [node for kind in kinds for node in module.nodes(kind)]
    found.sort(key=lambda node: (getattr(node, "lineno", 0), getattr(node, "col_offset", 0)))
    return found


def is_sample(module: Module) -> bool:
    return bool(SAMPLE_DIRS.intersection(module.path.split("/")[:-1]))


def call_target(module: Module, call: ast.Call) -> str | None:
    return module.qualified_name(call.func)


def _router_names(module: Module) -> frozenset[str]:
    """Names bound in the module to `FastAPI()` / `APIRouter()` (or imported routers)."""
    names: set[str] = set()
    for node in nodes_of(module, ast.Assign, ast.AnnAssign):
        if (
            isinstance(node, ast.Assign | ast.AnnAssign)
            and isinstance(node.value, ast.Call)
            and _is_router_factory(module, node.value.func)
        ):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                if isinstance(target, ast.Name):
                    names.add(target.id)
                elif isinstance(target, ast.Attribute):
                    names.add(target.attr)
    return frozenset(names)


def _is_router_factory(module: Module, func: ast.expr) -> bool:
    """`FastAPI()`, `APIRouter()`, or a project's own router class (Polar's
    `polar.routing.APIRouter`): any callable whose name ends in `Router` or `FastAPI`."""
    if module.qualified_name(func) in _ROUTE_FACTORIES:
        return True
    name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
    return isinstance(name, str) and name.endswith(("Router", "FastAPI"))


def _looks_like_router(module: Module, expr: ast.expr, local_routers: frozenset[str]) -> bool:
    if isinstance(expr, ast.Name):
        if expr.id in local_routers:
            return True
        # An imported router (`from app.api import router`) in a module that uses FastAPI.
        return (expr.id in module.imports and "router" in expr.id.lower()) or expr.id == "app"
    if isinstance(expr, ast.Attribute):
        return expr.attr in local_routers or "router" in expr.attr.lower() or expr.attr == "app"
    return False


def iter_routes(project: Project) -> Iterator[Route]:
    for module in project.app_modules:
        yield from module_routes(module)


_MEMO: dict[tuple[str, int], tuple[Any, Any]] = {}


def _memo(kind: str, owner: object, compute: Any) -> Any:
    """Per-object memo keyed by identity (Module and Project are unhashable dataclasses);
    the owner is kept in the entry so its id cannot be reused while cached."""
    key = (kind, id(owner))
    entry = _MEMO.get(key)
    if entry is None or entry[0] is not owner:
        entry = (owner, compute(owner))
        _MEMO[key] = entry
    return entry[1]


def module_routes(module: Module) -> tuple[Route, ...]:
    """The module's routes (a fact: see `Route`)."""
    return module_fact(module, _routes)


@extractor(when=lambda module: module.uses_fastapi)
def _routes(module: Module) -> tuple[Route, ...]:
    routers = _router_names(module)
    routes: list[Route] = []
    defs: dict[str, FunctionNode] = {}
    for node in nodes_of(module, ast.FunctionDef, ast.AsyncFunctionDef):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            defs.setdefault(node.name, node)
            for index in range(len(node.decorator_list)):
                route = _decorator_route(module, node, index, routers)
                if route is not None:
                    routes.append(route)
    for node in nodes_of(module, ast.Call):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "add_api_route"
            and len(node.args) >= 2
            and isinstance(node.args[1], ast.Name)
            and node.args[1].id in defs
        ):
            handler = defs[node.args[1].id]
            place = (handler.lineno, handler.col_offset)
            path, lists = str_value(node.args[0]), returns_a_list(None, handler.returns)
            routes.append(Route(module, place, _methods(node), path, None, lists))
    return tuple(routes)


def _methods(call: ast.Call) -> frozenset[str]:
    """`methods=["PATCH"]` of `api_route` / `add_api_route` (FastAPI's default is GET)."""
    methods = literal(kwarg(call, "methods"))
    if isinstance(methods, list | tuple | set):
        return frozenset(m.lower() for m in methods if isinstance(m, str))
    return frozenset({"get"})


def _decorator_route(
    module: Module, func: FunctionNode, index: int, routers: frozenset[str]
) -> Route | None:
    decorator = func.decorator_list[index]
    if not isinstance(decorator, ast.Call) or not isinstance(decorator.func, ast.Attribute):
        return None
    attr = decorator.func.attr
    if attr not in HTTP_METHODS and attr != "api_route":
        return None
    if not _looks_like_router(module, decorator.func.value, routers):
        return None
    path = str_value(decorator.args[0]) if decorator.args else str_value(kwarg(decorator, "path"))
    names = _methods(decorator) if attr == "api_route" else frozenset({attr})
    lists = returns_a_list(kwarg(decorator, "response_model"), func.returns)
    return Route(module, (func.lineno, func.col_offset), names, path, index, lists)


def returns_a_list(response_model: ast.expr | None, returns: ast.expr | None) -> bool:
    """Is the response model, or else the return annotation, a list of things?"""
    for candidate in (response_model, returns):
        head = annotation_text(candidate).split("[")[0].rsplit(".", 1)[-1]
        if head in {"list", "List", "Sequence", "Iterable"}:
            return True
    return False


def mentions(module: Module, *words: str) -> bool:
    """A cheap text pre-filter: does the module's source contain any of the words?"""
    text = module.text
    return any(word in text for word in words)


def walk_body(func: FunctionNode) -> Iterator[ast.AST]:
    """Every node of the function's own body (nested defs, lambdas and classes left out)."""
    return body_nodes(func)


def qualname_of(project: Project, module: Module, func: FunctionNode) -> str | None:
    """The name `Project.functions` knows `func` (a def of `module`) by."""
    qualname = module.qualname_of(func)
    if qualname is None or project.functions.owners.get(qualname) is not module:
        return None
    return qualname


def _param_annotation(func: FunctionNode, name: str) -> ast.expr | None:
    args = func.args
    for arg in [*args.posonlyargs, *args.args, *args.kwonlyargs]:
        if arg.arg == name and arg.annotation is not None:
            annotation = arg.annotation
            if isinstance(annotation, ast.Subscript) and ast.unparse(annotation.value).endswith(
                "Annotated"
            ):
                inner = annotation.slice
                return inner.elts[0] if isinstance(inner, ast.Tuple) and inner.elts else None
            return annotation
    return None


def resolve_function(
    project: Project, module: Module, call: ast.Call, caller: FunctionNode | None = None
) -> tuple[Module, FunctionNode] | None:
    """The project function a call reaches: through imports and re-exports and
    `self.method()` (the call graph's resolution), and `repo.method()` where `repo` is a
    parameter annotated with one of the project's classes (`repo: Repository = Depends()`)."""
    graph = CallGraph.of(project)
    qualname = qualname_of(project, module, caller) if caller is not None else None
    target = graph.resolve(module, call.func, qualname)
    if target is not None and target in project.functions:
        return project.functions[target]
    func = call.func
    if caller is not None and isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
        annotation = _param_annotation(caller, func.value.id)
        if annotation is not None:
            klass = module.qualified_name(annotation)
            if klass is not None:
                method = f"{graph.canonical(klass)}.{func.attr}"
                return project.functions.get(method)
    return None


def settings_default(
    project: Project, attr: str
) -> list[tuple[Module, ast.AnnAssign | ast.Assign]]:
    """Every class-level definition of `attr` with a value, in classes of the project."""
    found: list[tuple[Module, ast.AnnAssign | ast.Assign]] = []
    for module, node in _class_fields(project).get(attr, []):
        found.append((module, node))
    return found


def _compute_class_fields(
    project: Project,
) -> dict[str, list[tuple[Module, ast.AnnAssign | ast.Assign]]]:
    fields: dict[str, list[tuple[Module, ast.AnnAssign | ast.Assign]]] = {}
    for module in project.modules:
        if module.is_test:
            continue
        for node in nodes_of(module, ast.ClassDef):
            if not isinstance(node, ast.ClassDef):
                continue
            for stmt in node.body:
                if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name):
                    if stmt.value is not None:
                        fields.setdefault(stmt.target.id, []).append((module, stmt))
                elif isinstance(stmt, ast.Assign):
                    for target in stmt.targets:
                        if isinstance(target, ast.Name):
                            fields.setdefault(target.id, []).append((module, stmt))
    return fields


def _class_fields(project: Project) -> dict[str, list[tuple[Module, ast.AnnAssign | ast.Assign]]]:
    fields: dict[str, list[tuple[Module, ast.AnnAssign | ast.Assign]]] = _memo(
        "fields", project, _compute_class_fields
    )
    return fields


def field_value(node: ast.AnnAssign | ast.Assign) -> ast.expr | None:
    """The default of a field: `X: T = v` → v; `X: T = Field(default=v)` / `Field(v)` → v."""
    value = node.value
    if isinstance(value, ast.Call) and isinstance(value.func, ast.Name | ast.Attribute):
        name = value.func.id if isinstance(value.func, ast.Name) else value.func.attr
        if name == "Field":
            if value.args:
                return value.args[0]
            return kwarg(value, "default")
    return value


def annotation_text(node: ast.expr | None) -> str:
    return ast.unparse(node) if node is not None else ""
