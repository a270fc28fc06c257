"""API/HTTP rules: partial updates, uploads, unbounded lists, response models, middleware."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from typing import ClassVar

from keel_audit.model import Finding, Location, Severity, Step
from keel_audit.rules._web import (
    annotation_text,
    is_sample,
    iter_routes,
    kwarg,
    literal,
    mentions,
    module_routes,
    nodes_of,
    resolve_function,
    walk_body,
)
from keel_audit.rules.base import Rule
from keel_audit.source import FunctionNode, Module, Project

_PRIMITIVES = frozenset(
    {
        "str", "int", "float", "bool", "bytes", "UUID", "uuid.UUID", "datetime", "date",
        "Decimal", "Request", "Response", "BackgroundTasks", "UploadFile", "WebSocket",
        "dict", "list", "Any", "object", "None",
    }
)  # fmt: skip
_PARAM_FACTORIES = frozenset(
    {"Depends", "Security", "Query", "Path", "Header", "Cookie", "File", "Form"}
)
_MAX_DEPTH = 4


def _params(func: FunctionNode) -> list[ast.arg]:
    args = func.args
    return [*args.posonlyargs, *args.args, *args.kwonlyargs]


def _defaults(func: FunctionNode) -> dict[str, ast.expr]:
    args = func.args
    positional = [*args.posonlyargs, *args.args]
    found: dict[str, ast.expr] = {}
    for arg, default in zip(
        positional[len(positional) - len(args.defaults) :], args.defaults, strict=True
    ):
        found[arg.arg] = default
    for arg, kw_default in zip(args.kwonlyargs, args.kw_defaults, strict=True):
        if kw_default is not None:
            found[arg.arg] = kw_default
    return found


def _factory_name(expr: ast.expr) -> str | None:
    if isinstance(expr, ast.Call):
        func = expr.func
        if isinstance(func, ast.Name):
            return func.id
        if isinstance(func, ast.Attribute):
            return func.attr
    return None


def _body_params(func: FunctionNode) -> set[str]:
    """Parameters that are request bodies: annotated with a model class, not a dependency,
    query, path or primitive."""
    defaults = _defaults(func)
    names: set[str] = set()
    for arg in _params(func):
        annotation = arg.annotation
        if annotation is None or arg.arg in {"self", "cls"}:
            continue
        if isinstance(annotation, ast.Subscript) and annotation_text(annotation.value).endswith(
            "Annotated"
        ):
            elements = annotation.slice.elts if isinstance(annotation.slice, ast.Tuple) else []
            if any(_factory_name(e) in _PARAM_FACTORIES for e in elements[1:]):
                continue
            annotation = elements[0] if elements else annotation
        text = annotation_text(annotation)
        if text in _PRIMITIVES or text.split("[")[0] in {"list", "dict", "List", "Dict"}:
            continue
        if not isinstance(annotation, ast.Name | ast.Attribute):
            continue
        default = defaults.get(arg.arg)
        if default is not None and _factory_name(default) in _PARAM_FACTORIES - {"Body"}:
            continue
        names.add(arg.arg)
    return names


# --- KA301 -----------------------------------------------------------------------------

_DUMPS = frozenset({"model_dump", "dict"})
_APPLY_METHODS = frozenset({"sqlmodel_update", "values", "update", "model_copy", "copy"})


def _is_partial_dump(call: ast.expr, schema_names: set[str]) -> bool:
    """`schema.model_dump(...)` / `schema.dict(...)` without exclude_unset/none/defaults."""
    if not (
        isinstance(call, ast.Call)
        and isinstance(call.func, ast.Attribute)
        and call.func.attr in _DUMPS
        and isinstance(call.func.value, ast.Name)
        and call.func.value.id in schema_names
    ):
        return False
    for flag in ("exclude_unset", "exclude_none", "exclude_defaults", "skip_defaults"):
        value = kwarg(call, flag)
        if value is not None and literal(value) is not False:
            return False
    return not any(keyword.arg is None for keyword in call.keywords)


Origin = tuple[Module, ast.Call]  # where a full dump was made


@dataclass(frozen=True)
class _Hit:
    origin: Origin
    sink: Location
    how: str


class _PatchTracer:
    """Follows an update schema from a PATCH handler into the services it is passed to, and
    reports where its full dump (unset fields included) is applied to a stored object."""

    def __init__(self, project: Project) -> None:
        self.project = project

    def trace(
        self,
        module: Module,
        func: FunctionNode,
        schemas: set[str],
        dumps: dict[str, Origin],
        chain: tuple[Step, ...],
        depth: int,
        seen: set[int],
    ) -> Iterator[tuple[_Hit, tuple[Step, ...]]]:
        if depth > _MAX_DEPTH or id(func) in seen or not (schemas or dumps):
            return
        seen = seen | {id(func)}
        local = dict(dumps)
        for node in walk_body(func):
            if isinstance(node, ast.Assign) and len(node.targets) == 1:
                target = node.targets[0]
                if isinstance(target, ast.Name):
                    origin = self._origin(module, node.value, schemas, local)
                    if origin is not None:
                        local[target.id] = origin
                    else:
                        local.pop(target.id, None)
            if isinstance(node, ast.For):
                hit = self._for_sink(module, node, schemas, local)
                if hit is not None:
                    yield hit, chain
            elif isinstance(node, ast.Call):
                yield from self._call_sinks(module, node, schemas, local, chain)
                yield from self._follow(module, func, node, schemas, local, chain, depth, seen)

    @staticmethod
    def _origin(
        module: Module, expr: ast.expr, schemas: set[str], local: dict[str, Origin]
    ) -> Origin | None:
        if isinstance(expr, ast.Call) and _is_partial_dump(expr, schemas):
            return module, expr
        if isinstance(expr, ast.Name):
            return local.get(expr.id)
        return None

    def _for_sink(
        self, module: Module, node: ast.For, schemas: set[str], local: dict[str, Origin]
    ) -> _Hit | None:
        iterated = node.iter
        source: ast.expr = iterated
        if (
            isinstance(iterated, ast.Call)
            and isinstance(iterated.func, ast.Attribute)
            and iterated.func.attr in {"items", "keys"}
        ):
            source = iterated.func.value
        origin = self._origin(module, source, schemas, local)
        if origin is None:
            return None
        for inner in ast.walk(node):
            if (
                isinstance(inner, ast.Call)
                and isinstance(inner.func, ast.Name)
                and inner.func.id == "setattr"
            ):
                return _Hit(
                    origin, Location(module.path, inner.lineno, inner.col_offset), "a setattr loop"
                )
        return None

    def _call_sinks(
        self,
        module: Module,
        call: ast.Call,
        schemas: set[str],
        local: dict[str, Origin],
        chain: tuple[Step, ...],
    ) -> Iterator[tuple[_Hit, tuple[Step, ...]]]:
        func = call.func
        if not isinstance(func, ast.Attribute) or func.attr not in _APPLY_METHODS:
            return
        # `data.update(...)` changes the dump itself; that is not applying it.
        if isinstance(func.value, ast.Name) and func.value.id in local:
            return
        if func.attr in {"model_copy", "copy"}:
            candidates = [k.value for k in call.keywords if k.arg == "update"]
        else:
            candidates = [*call.args, *(k.value for k in call.keywords if k.arg is None)]
        for candidate in candidates:
            origin = self._origin(module, candidate, schemas, local)
            if origin is not None:
                where = Location(module.path, call.lineno, call.col_offset)
                yield _Hit(origin, where, f".{func.attr}()"), chain

    def _follow(
        self,
        module: Module,
        caller: FunctionNode,
        call: ast.Call,
        schemas: set[str],
        local: dict[str, Origin],
        chain: tuple[Step, ...],
        depth: int,
        seen: set[int],
    ) -> Iterator[tuple[_Hit, tuple[Step, ...]]]:
        target = resolve_function(self.project, module, call, caller)
        if target is None:
            return
        callee_module, callee = target
        params = [p.arg for p in _params(callee)]
        if params and params[0] in {"self", "cls"} and isinstance(call.func, ast.Attribute):
            params = params[1:]
        passed: list[tuple[str, ast.expr]] = [
            (params[index], arg) for index, arg in enumerate(call.args) if index < len(params)
        ]
        passed += [(k.arg, k.value) for k in call.keywords if k.arg is not None]
        callee_schemas: set[str] = set()
        callee_dumps: dict[str, Origin] = {}
        for param, arg in passed:
            if isinstance(arg, ast.Name) and arg.id in schemas:
                callee_schemas.add(param)
            else:
                origin = self._origin(module, arg, schemas, local)
                if origin is not None:
                    callee_dumps[param] = origin
        if not (callee_schemas or callee_dumps):
            return
        step = Step(
            Location(module.path, call.lineno, call.col_offset), f"calls {ast.unparse(call.func)}"
        )
        yield from self.trace(
            callee_module, callee, callee_schemas, callee_dumps, (*chain, step), depth + 1, seen
        )


class PatchWithoutExcludeUnset(Rule):
    code: ClassVar[str] = "KA301"
    name: ClassVar[str] = "patch-without-exclude-unset"
    severity: ClassVar[Severity] = Severity.ERROR
    summary: ClassVar[str] = (
        "A PATCH handler (or the service it calls) applies the whole update schema, unset "
        "fields included"
    )
    why: ClassVar[str] = (
        "`model_dump()` / `.dict()` without `exclude_unset=True` returns every field of the "
        "update schema, and the ones the client did not send come back as their defaults "
        "(usually None). Applying that dict with `setattr`, `.update()`, `.values()` or "
        "`sqlmodel_update()` overwrites stored columns the client never mentioned: a PATCH "
        'of `{"name": "x"}` silently clears the email, the price, the owner. It passes '
        "every test that sends the full object."
    )
    fix: ClassVar[str] = (
        "Dump only what the client sent: `changes = body.model_dump(exclude_unset=True)` "
        "and apply `changes`. Keep the partial-update semantics in one place (the service "
        "or repository) and test a PATCH that sends one field and checks the others kept "
        "their values."
    )

    def check(self, project: Project) -> Iterator[Finding]:
        tracer = _PatchTracer(project)
        reported: set[tuple[str, int, int]] = set()
        for route in iter_routes(project):
            if "patch" not in route.methods or route.module.is_test:
                continue
            schemas = _body_params(route.func)
            start = Step(
                Location(route.module.path, route.func.lineno, route.func.col_offset),
                f"PATCH handler {route.func.name}",
            )
            hits = tracer.trace(route.module, route.func, schemas, {}, (start,), 0, set())
            for hit, chain in hits:
                dump_module, dump = hit.origin
                key = (dump_module.path, dump.lineno, dump.col_offset)
                if key in reported:
                    continue
                reported.add(key)
                dumped = Step(Location(*key), f"{ast.unparse(dump)[:60]} (unset fields included)")
                applied = Step(hit.sink, f"applied through {hit.how}")
                yield self.finding(
                    dump_module,
                    dump,
                    f"PATCH {route.path or route.func.name}: `{ast.unparse(dump)[:80]}` is "
                    f"applied through {hit.how} ({hit.sink}) without exclude_unset=True",
                    (*chain, dumped, applied),
                )


# --- KA302 -----------------------------------------------------------------------------


def _upload_params(func: FunctionNode) -> tuple[set[str], set[str]]:
    """(single UploadFile params, list-of-UploadFile params)."""
    single: set[str] = set()
    many: set[str] = set()
    for arg in _params(func):
        text = annotation_text(arg.annotation)
        if "UploadFile" not in text:
            continue
        head = text.split("UploadFile")[0]
        if any(word in head for word in ("list[", "List[", "Sequence[", "tuple[")):
            many.add(arg.arg)
        else:
            single.add(arg.arg)
    return single, many


class UploadReadIntoMemory(Rule):
    code: ClassVar[str] = "KA302"
    name: ClassVar[str] = "upload-read-into-memory"
    severity: ClassVar[Severity] = Severity.WARNING
    summary: ClassVar[str] = "An uploaded file is read whole into memory, with no size bound"
    why: ClassVar[str] = (
        "`await file.read()` (or `file.file.read()`) with no size loads the entire upload "
        "into one bytes object. Starlette spools uploads to disk past 1 MB precisely so this "
        "does not happen; reading it back whole lets one client with a 2 GB upload (or ten "
        "with 200 MB) exhaust the worker's memory and kill every request it was serving."
    )
    fix: ClassVar[str] = (
        "Check `file.size` against a limit before reading, or stream it in chunks: "
        "`while chunk := await file.read(1 << 20): ...` (or `shutil.copyfileobj(file.file, "
        "dest)` in a thread). Reject oversized uploads with 413."
    )

    def check_module(self, project: Project, module: Module) -> Iterator[Finding]:
        if module.is_test or not mentions(module, "UploadFile"):
            return
        for node in nodes_of(module, ast.FunctionDef, ast.AsyncFunctionDef):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                yield from self._check_function(module, node)

    def _check_function(self, module: Module, func: FunctionNode) -> Iterator[Finding]:
        single, many = _upload_params(func)
        if not (single or many):
            return
        files = set(single)
        nodes = list(walk_body(func))
        for node in nodes:
            if (
                isinstance(node, ast.For | ast.comprehension)
                and isinstance(node.iter, ast.Name)
                and node.iter.id in many
                and isinstance(node.target, ast.Name)
            ):
                files.add(node.target.id)
        if self._size_checked(nodes, files):
            return
        for node in nodes:
            if not (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "read"
            ):
                continue
            if node.args and literal(node.args[0]) not in (-1, None):
                continue
            if kwarg(node, "size") is not None and literal(kwarg(node, "size")) not in (-1, None):
                continue
            receiver = node.func.value
            name: str | None = None
            if isinstance(receiver, ast.Name) and receiver.id in files:
                name = receiver.id
            elif (
                isinstance(receiver, ast.Attribute)
                and receiver.attr == "file"
                and isinstance(receiver.value, ast.Name)
                and receiver.value.id in files
            ):
                name = f"{receiver.value.id}.file"
            if name is None:
                continue
            yield self.finding(
                module,
                node,
                f"`{ast.unparse(node)}` in {func.name} reads the whole upload into memory "
                f"(no size argument, no {name.split('.')[0]}.size check)",
            )

    @staticmethod
    def _size_checked(nodes: list[ast.AST], files: set[str]) -> bool:
        for node in nodes:
            if isinstance(node, ast.Compare):
                for side in [node.left, *node.comparators]:
                    for inner in ast.walk(side):
                        if (
                            isinstance(inner, ast.Attribute)
                            and inner.attr == "size"
                            and isinstance(inner.value, ast.Name)
                            and inner.value.id in files
                        ):
                            return True
        return False


# --- KA303 -----------------------------------------------------------------------------

_MATERIALIZE = frozenset({"all", "fetchall"})
_QUERY_CALLS = frozenset(
    {"select", "query", "scalars", "exec", "execute", "filter", "filter_by", "where", "find"}
)
_BOUNDS = frozenset(
    {"limit", "offset", "slice", "paginate", "fetch", "first", "one", "one_or_none",
     "scalar_one", "scalar", "get", "page", "apaginate", "in_"}
)  # fmt: skip
_PAGE_PARAMS = frozenset(
    {"limit", "offset", "page", "size", "per_page", "page_size", "cursor", "skip", "after",
     "before", "pagination", "params", "first", "take"}
)  # fmt: skip


def _call_names(expr: ast.AST) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(expr):
        if isinstance(node, ast.Call):
            if isinstance(node.func, ast.Attribute):
                names.add(node.func.attr)
            elif isinstance(node.func, ast.Name):
                names.add(node.func.id)
    return names


def _mentions_limit_sql(func: FunctionNode) -> bool:
    for node in walk_body(func):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            upper = node.value.upper()
            if " LIMIT " in f" {upper} " or "LIMIT" in upper.split():
                return True
    return False


class UnboundedListEndpoint(Rule):
    code: ClassVar[str] = "KA303"
    name: ClassVar[str] = "unbounded-list-endpoint"
    severity: ClassVar[Severity] = Severity.WARNING
    summary: ClassVar[str] = "A list endpoint returns every row of a query (no limit or pagination)"
    why: ClassVar[str] = (
        "A GET that returns `select(Model)...all()` with no limit is fine with 50 rows in "
        "staging and an outage with 5 million in production: one request loads the whole "
        "table into the worker, serialises it, and holds a connection while it does. Clients "
        "cannot page through it either, so they re-fetch everything."
    )
    fix: ClassVar[str] = (
        "Take `limit`/`offset` (or a cursor) parameters with a server-side maximum, apply "
        "them to the query (`.limit(limit).offset(offset)`), and return a page envelope "
        "with the total or a next cursor. Keep one pagination helper for the whole API."
    )

    def check(self, project: Project) -> Iterator[Finding]:
        for route in iter_routes(project):
            if route.module.is_test or "get" not in route.methods:
                continue
            if not route.lists:
                continue
            if {p.arg.lower() for p in _params(route.func)} & _PAGE_PARAMS:
                continue
            start = Step(
                Location(route.module.path, route.func.lineno, route.func.col_offset),
                f"GET handler {route.func.name}",
            )
            hit = self._unbounded(project, route.module, route.func, (start,), 0, set())
            if hit is None:
                continue
            module, node, chain = hit
            yield self.finding(
                module,
                node,
                f"GET {route.path or route.func.name} returns `{ast.unparse(node)[:70]}` "
                "with no limit or pagination",
                chain,
            )

    def _unbounded(
        self,
        project: Project,
        module: Module,
        func: FunctionNode,
        chain: tuple[Step, ...],
        depth: int,
        seen: set[int],
    ) -> tuple[Module, ast.Call, tuple[Step, ...]] | None:
        if depth > 3 or id(func) in seen:
            return None
        seen.add(id(func))
        names: set[str] = set()
        for stmt in func.body:
            names |= _call_names(stmt)
        bounded = bool(names & _BOUNDS) or _mentions_limit_sql(func)
        for node in walk_body(func):
            if not isinstance(node, ast.Call):
                continue
            if (
                isinstance(node.func, ast.Attribute)
                and node.func.attr in _MATERIALIZE
                and not node.args
                and _call_names(node.func.value) & _QUERY_CALLS
                and not bounded
            ):
                return module, node, chain
            target = resolve_function(project, module, node, func)
            if target is not None:
                step = Step(
                    Location(module.path, node.lineno, node.col_offset),
                    f"calls {ast.unparse(node.func)}",
                )
                found = self._unbounded(project, *target, (*chain, step), depth + 1, seen)
                if found is not None:
                    return found
        return None


# --- KA304 -----------------------------------------------------------------------------

_ORM_RESULTS = frozenset(
    {"scalar_one", "scalar_one_or_none", "first", "one", "one_or_none", "get", "all",
     "scalars", "fetchone", "fetchall"}
)  # fmt: skip
_UNTYPED_RETURNS = frozenset({"", "Any", "typing.Any", "dict", "Dict", "dict[str, Any]",
                              "Dict[str, Any]", "object"})  # fmt: skip


class NoResponseModel(Rule):
    code: ClassVar[str] = "KA304"
    name: ClassVar[str] = "no-response-model"
    severity: ClassVar[Severity] = Severity.INFO
    summary: ClassVar[str] = (
        "An endpoint with no response model returns an ORM object or a raw dict"
    )
    why: ClassVar[str] = (
        "Without a response model FastAPI serialises whatever the handler returns: every "
        "column of an ORM row (password hashes and internal flags included) or a dict whose "
        "shape nobody declared. The OpenAPI schema shows no response body, so clients are "
        "generated against nothing, and a refactor that renames a key breaks them silently."
    )
    fix: ClassVar[str] = (
        "Declare the response: a return annotation with a Pydantic model "
        "(`-> UserOut`) or `response_model=UserOut`, with `from_attributes=True` for ORM "
        "objects. The model then filters fields and documents the contract."
    )

    def check_module(self, project: Project, module: Module) -> Iterator[Finding]:
        if module.is_test or is_sample(module) or not module.uses_fastapi:
            return  # (`iter_routes` reads the modules that import FastAPI)
        for route in module_routes(module):
            if route.decorator is None:
                continue
            if route.kwarg("response_model") is not None or route.kwarg("response_class"):
                continue
            if annotation_text(route.func.returns) not in _UNTYPED_RETURNS:
                continue
            status = literal(route.kwarg("status_code"))
            if status == 204:
                continue
            for node in walk_body(route.func):
                if not isinstance(node, ast.Return) or node.value is None:
                    continue
                what = self._untyped(node.value)
                if what is not None:
                    yield self.finding(
                        route.module,
                        node,
                        f"{route.func.name} ({'/'.join(sorted(route.methods)).upper()} "
                        f"{route.path or ''}) has no response model and returns {what}",
                    )
                    break

    @staticmethod
    def _untyped(value: ast.expr) -> str | None:
        if isinstance(value, ast.Await):
            value = value.value
        if isinstance(value, ast.Dict) and value.keys:
            # A fixed acknowledgement (`{"status": "ok"}`) has nothing to document or leak.
            if all(isinstance(v, ast.Constant) for v in value.values):
                return None
            return "a raw dict"
        if (
            isinstance(value, ast.Call)
            and isinstance(value.func, ast.Attribute)
            and value.func.attr in _ORM_RESULTS
            and _call_names(value) & (_QUERY_CALLS | {"get"})
            and any(
                isinstance(n, ast.Name) and ("session" in n.id.lower() or n.id in {"db", "conn"})
                for n in ast.walk(value)
            )
        ):
            return f"an ORM result (`{ast.unparse(value)[:60]}`)"
        return None


# --- KA305 -----------------------------------------------------------------------------

_BASE_HTTP = frozenset(
    {"starlette.middleware.base.BaseHTTPMiddleware", "fastapi.middleware.base.BaseHTTPMiddleware"}
)


class BaseHttpMiddleware(Rule):
    code: ClassVar[str] = "KA305"
    name: ClassVar[str] = "base-http-middleware"
    severity: ClassVar[Severity] = Severity.WARNING
    summary: ClassVar[str] = 'Middleware built on BaseHTTPMiddleware / @app.middleware("http")'
    why: ClassVar[str] = (
        "BaseHTTPMiddleware runs the rest of the app in a separate task behind a memory "
        "stream: context variables set downstream do not reach the middleware, streaming "
        "responses are buffered through it, every middleware of this kind costs a task and "
        "a stream per request (measurably lower throughput), and client disconnects and "
        "exceptions take paths that differ from a plain ASGI app. "
        '`@app.middleware("http")` is the same class underneath.'
    )
    fix: ClassVar[str] = (
        "Write the middleware as a pure ASGI callable (`async def __call__(self, scope, "
        "receive, send)`), wrapping `send` to see the response start; register it with "
        "`app.add_middleware(...)`."
    )

    def check_module(self, project: Project, module: Module) -> Iterator[Finding]:
        if module.is_test or not mentions(module, "BaseHTTPMiddleware", ".middleware("):
            return
        for node in nodes_of(module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef):
            if isinstance(node, ast.ClassDef):
                for base in node.bases:
                    if module.qualified_name(base) in _BASE_HTTP:
                        yield self.finding(
                            module, node, f"class {node.name} subclasses BaseHTTPMiddleware"
                        )
            elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                for decorator in node.decorator_list:
                    if (
                        isinstance(decorator, ast.Call)
                        and isinstance(decorator.func, ast.Attribute)
                        and decorator.func.attr == "middleware"
                        and decorator.args
                        and literal(decorator.args[0]) == "http"
                        and any(
                            v.startswith(("fastapi", "starlette")) for v in module.imports.values()
                        )
                    ):
                        yield self.finding(
                            module,
                            decorator,
                            f"{node.name} is registered with @{ast.unparse(decorator.func)}"
                            '("http") (a BaseHTTPMiddleware)',
                        )


RULES: tuple[type[Rule], ...] = (
    PatchWithoutExcludeUnset,
    UploadReadIntoMemory,
    UnboundedListEndpoint,
    NoResponseModel,
    BaseHttpMiddleware,
)
