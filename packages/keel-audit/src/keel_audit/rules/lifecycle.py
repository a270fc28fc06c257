"""KA1xx (engine's part): engines and clients and their lifecycle; deprecated start-up hooks."""

from __future__ import annotations

import ast
from collections.abc import Iterator

from keel_audit.callgraph import CallGraph, body_nodes
from keel_audit.facts import extractor, is_not_test, module_fact
from keel_audit.model import Finding, Severity
from keel_audit.rules.base import Rule
from keel_audit.source import FunctionNode, Module, Project

_ENGINES = {
    "sqlalchemy.create_engine": "SQLAlchemy engine",
    "sqlalchemy.engine.create_engine": "SQLAlchemy engine",
    "sqlalchemy.ext.asyncio.create_async_engine": "SQLAlchemy engine",
    "sqlalchemy.ext.asyncio.async_engine_from_config": "SQLAlchemy engine",
    "sqlalchemy.engine_from_config": "SQLAlchemy engine",
    "sqlmodel.create_engine": "SQLAlchemy engine",
}
_POOLED_CLIENTS = {
    **dict.fromkeys(
        ("redis.Redis", "redis.StrictRedis", "redis.from_url", "redis.Redis.from_url",
         "redis.asyncio.Redis", "redis.asyncio.StrictRedis", "redis.asyncio.from_url",
         "redis.asyncio.Redis.from_url", "redis.asyncio.client.Redis", "aioredis.from_url",
         "aioredis.Redis", "aioredis.create_redis_pool"),
        "Redis client",
    ),
    "httpx.Client": "httpx client",
    "httpx.AsyncClient": "httpx client",
    "motor.motor_asyncio.AsyncIOMotorClient": "MongoDB client",
    "pymongo.MongoClient": "MongoDB client",
    "pymongo.AsyncMongoClient": "MongoDB client",
    "aiohttp.ClientSession": "aiohttp session",
    "elasticsearch.Elasticsearch": "Elasticsearch client",
    "elasticsearch.AsyncElasticsearch": "Elasticsearch client",
}  # fmt: skip
_DISPOSABLE = {**_ENGINES, **_POOLED_CLIENTS}
CONSTRUCTORS = {
    **_DISPOSABLE,
    "boto3.client": "boto3 client",
    "boto3.resource": "boto3 resource",
    "aiobotocore.session.AioSession.create_client": "aiobotocore client",
}
DISPOSE_METHODS = frozenset({"dispose", "close", "aclose", "disconnect", "shutdown"})
_ENTER = frozenset({"enter_context", "enter_async_context"})


def creations(project: Project, table: dict[str, str]) -> Iterator[tuple[Module, ast.Call, str]]:
    """(module, call, what) for every call in non-test code that makes something in `table`
    (one pass over the project's calls, shared by the rules that ask)."""
    found = project.__dict__.get("_ka_creations")
    if not isinstance(found, list):
        graph = CallGraph.of(project)
        found = []
        for module in project.modules:
            if module.is_test:
                continue
            hits = sorted(
                (index, name)
                for dotted, indexes in module_fact(module, call_names).items()
                if (name := graph.canonical(dotted)) in CONSTRUCTORS
                for index in indexes
            )
            calls = module.nodes(ast.Call) if hits else []  # (the tree again, if dropped)
            found.extend((module, calls[index], name) for index, name in hits)
        project.__dict__["_ka_creations"] = found
    for module, call, name in found:
        if name in table:
            yield module, call, table[name]


@extractor(when=is_not_test)
def call_names(module: Module) -> dict[str, tuple[int, ...]]:
    """Dotted name (through the module's imports, before re-exports are followed) → the
    positions in `module.nodes(ast.Call)` of the calls of it (a module fact): the names
    that are, or may turn out to be, one of the `CONSTRUCTORS`."""
    found: dict[str, list[int]] = {}
    for index, call in enumerate(module.nodes(ast.Call)):
        dotted = module.qualified_name(call.func)
        if dotted and (dotted in CONSTRUCTORS or module.may_be_the_projects(dotted)):
            found.setdefault(dotted, []).append(index)
    return {dotted: tuple(indexes) for dotted, indexes in found.items()}


def _call_name(call: ast.Call) -> str:
    return ast.unparse(call.func)


class ClientAtImport(Rule):
    code = "KA101"
    name = "client-at-import"
    severity = Severity.WARNING
    summary = "A database engine or network client created at module import time."
    why = (
        "Created at import, the engine reads its settings before the application is "
        "configured (tests cannot point it elsewhere), is shared by every process that "
        "forks after import (pooled connections crossing processes corrupt each other), "
        "outlives the event loop it was bound to, and has no owner to close it. Importing "
        "the module for a script or a test opens a pool as a side effect."
    )
    fix = (
        "Create it in the lifespan and close it there; hand it to requests through "
        "`app.state` or a dependency:\n"
        "    @asynccontextmanager\n"
        "    async def lifespan(app):\n"
        "        engine = create_async_engine(settings.database_url, pool_pre_ping=True)\n"
        "        app.state.engine = engine\n"
        "        yield\n"
        "        await engine.dispose()"
    )

    def check(self, project: Project) -> Iterator[Finding]:
        if not project.app_modules:
            return
        for module, call, what in creations(project, CONSTRUCTORS):
            if module.at_import_time(call):
                yield self.finding(
                    module, call, f"{what} created at import: {_call_name(call)}(...)"
                )


def _bound_name(module: Module, call: ast.Call) -> tuple[str | None, bool]:
    """(the name the new object is bound to, whether it is managed or escapes)."""
    parent = module.parent(call)
    if isinstance(parent, ast.withitem):
        return None, True
    if isinstance(parent, ast.Call):  # enter_async_context(X(...)), Database(X(...)), ...
        return None, True
    if isinstance(parent, ast.Assign | ast.AnnAssign):
        targets = parent.targets if isinstance(parent, ast.Assign) else [parent.target]
        target = targets[0]
        if isinstance(target, ast.Name):
            return target.id, False
        if isinstance(target, ast.Attribute):
            return target.attr, False
        return None, True
    return None, True  # returned, yielded, in a container: someone else owns it


def _final_name(expr: ast.expr) -> str | None:
    if isinstance(expr, ast.Name):
        return expr.id
    if isinstance(expr, ast.Attribute):
        return expr.attr
    return None


def _disposed_in(nodes: Iterator[ast.AST] | list[ast.AST]) -> set[str]:
    """Names whose dispose/close is called or registered (`stack.callback(x.close)`)."""
    names: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.Attribute) and node.attr in DISPOSE_METHODS:
            name = _final_name(node.value)
            if name:
                names.add(name)
    return names


def _escapes(function: ast.AST, name: str) -> bool:
    """The local is returned, yielded or passed on: its owner is elsewhere."""
    for node in ast.walk(function):
        value: ast.expr | None = None
        if isinstance(node, ast.Return | ast.Yield):
            value = node.value
        if value is not None and any(
            isinstance(n, ast.Name) and n.id == name for n in ast.walk(value)
        ):
            return True
        if isinstance(node, ast.Call):
            passed = [*node.args, *(k.value for k in node.keywords)]
            if any(isinstance(a, ast.Name) and a.id == name for a in passed):
                return True
        if (
            isinstance(node, ast.Assign)
            and any(isinstance(n, ast.Name) and n.id == name for n in ast.walk(node.value))
            and any(isinstance(t, ast.Attribute | ast.Subscript) for t in node.targets)
        ):
            return True
    return False


def shutdown_roots(project: Project) -> list[str]:
    """Functions that run at shutdown: lifespans (passed as `lifespan=`, or named so),
    `on_event("shutdown")` / `add_event_handler("shutdown", f)` handlers, `on_shutdown=[...]`."""
    graph = CallGraph.of(project)
    roots: set[str] = set()
    for qualname in project.functions:
        own = qualname.rsplit(".", 1)[-1].lower()  # (the def's own name)
        if "lifespan" in own or "shutdown" in own:
            roots.add(qualname)
    for module in project.modules:
        referenced, handlers = module_fact(module, shutdown_hooks)
        for dotted in referenced:
            name = graph.canonical(dotted)
            if name in project.functions:
                roots.add(name)
        roots.update(q for q in handlers if project.functions.owners.get(q) is module)
    return sorted(roots)


@extractor()
def shutdown_hooks(module: Module) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(the dotted names `lifespan=`, `on_shutdown=[...]` and `add_event_handler("shutdown",
    f)` refer to, unresolved; the qualified names of `on_event("shutdown")` handlers)."""
    referenced: list[str] = []
    for call in module.nodes(ast.Call):
        refs: list[ast.expr] = []
        for keyword in call.keywords:
            if keyword.arg == "lifespan":
                refs.append(keyword.value)
            elif keyword.arg == "on_shutdown" and isinstance(keyword.value, ast.List | ast.Tuple):
                refs.extend(keyword.value.elts)
        func = call.func
        if (
            isinstance(func, ast.Attribute)
            and func.attr == "add_event_handler"
            and len(call.args) > 1
            and _is_text(call.args[0], "shutdown")
        ):
            refs.append(call.args[1])
        for ref in refs:
            dotted = module.qualified_name(ref.func if isinstance(ref, ast.Call) else ref)
            if dotted is not None:
                referenced.append(dotted)
    handlers: list[str] = []
    functions: list[FunctionNode] = [
        *module.nodes(ast.FunctionDef),
        *module.nodes(ast.AsyncFunctionDef),
    ]
    for function in functions:
        for decorator in function.decorator_list:
            if (
                isinstance(decorator, ast.Call)
                and isinstance(decorator.func, ast.Attribute)
                and decorator.func.attr == "on_event"
                and decorator.args
                and _is_text(decorator.args[0], "shutdown")
            ):
                handler = module.qualname_of(function)
                if handler is not None:
                    handlers.append(handler)
    return tuple(referenced), tuple(handlers)


def _is_text(expr: ast.expr, value: str) -> bool:
    return isinstance(expr, ast.Constant) and expr.value == value


def reachable(project: Project, roots: list[str]) -> set[str]:
    """Functions reachable from `roots`: calls and references the graph resolves, nested
    functions, and — over-approximating, since only a *missing* dispose is reported — every
    project method whose name is called or referenced on any object (`database.dispose`)."""
    graph = CallGraph.of(project)
    by_method: dict[str, list[str]] = {}
    nested: dict[str, list[str]] = {}
    for qualname in project.functions:
        owner, _, last = qualname.rpartition(".")
        by_method.setdefault(last, []).append(qualname)
        nested.setdefault(owner, []).append(qualname)
    seen: set[str] = set()
    todo = list(roots)
    while todo:
        qualname = todo.pop()
        if qualname in seen or qualname not in project.functions:
            continue
        seen.add(qualname)
        module = project.functions[qualname][0]
        info = graph.info(qualname)
        todo.extend(nested.get(qualname, []))
        for child in info.body if info else ():
            if isinstance(child, ast.Attribute):
                todo.extend(by_method.get(child.attr, []))
            elif isinstance(child, ast.Name):
                name = graph.resolve(module, child)
                if name is not None and name in project.functions:
                    todo.append(name)
    return seen


class ClientNeverDisposed(Rule):
    code = "KA102"
    name = "client-never-disposed"
    severity = Severity.WARNING
    summary = "An engine or pooled client with no dispose()/close() on the lifespan's exit."
    why = (
        "An engine that is never disposed leaves its pooled connections to be dropped by "
        "process exit: the database sees aborted sessions, in-flight transactions are cut, "
        "and under a rolling deploy the old process can hold connections the new one "
        "needs. Async clients closed by garbage collection also warn or raise after the "
        "event loop is gone."
    )
    fix = (
        "Close it where the lifespan ends: `await engine.dispose()` after the `yield` "
        "(or `stack.push_async_callback(engine.dispose)`), `await client.aclose()` for "
        "httpx and redis.asyncio, or open it with `async with`."
    )

    def check(self, project: Project) -> Iterator[Finding]:
        if not project.app_modules:
            return
        roots = shutdown_roots(project)
        disposed: set[str] = set()
        graph = CallGraph.of(project)
        for qualname in sorted(reachable(project, roots)):
            info = graph.info(qualname)
            disposed |= _disposed_in(info.body if info else [])
        for module, call, what in creations(project, _DISPOSABLE):
            name, managed = _bound_name(module, call)
            if managed or name is None or name in disposed or _is_sqlite(module, call):
                continue
            if _in_main_block(module, call):
                continue
            function = module.enclosing_function(call)
            if not _long_lived(module, call, function):
                continue
            if function is not None and (
                name in _disposed_in(list(body_nodes(function))) or _escapes(function, name)
            ):
                continue
            where = "no lifespan or shutdown handler" if not roots else "nothing on shutdown"
            yield self.finding(
                module,
                call,
                f"{what} `{name}` is never disposed: {where} calls "
                f"{name}.dispose()/close()/aclose()",
            )


def _long_lived(module: Module, call: ast.Call, function: FunctionNode | None) -> bool:
    """Only what outlives a request and is shared is reported: made at import, or made per
    call inside an async def (a pool leaked per request). A sync function's or an object's
    own engine (migrations, a backup exporter, a script) has an owner the source does not
    show, so it is left alone: precision first."""
    if function is None:
        return True
    parent = module.parent(call)
    bound_to_attribute = isinstance(parent, ast.Assign) and isinstance(
        parent.targets[0], ast.Attribute
    )
    return isinstance(function, ast.AsyncFunctionDef) and not bound_to_attribute


_MIGRATIONS = frozenset({"alembic", "migrations", "revisions"})


def _one_off(module: Module, call: ast.Call) -> bool:
    """A migration script's engine, or one a function makes, uses and drops: its pool is
    never shared, so its settings do not matter."""
    if _MIGRATIONS & set(module.path.split("/")[:-1]):
        return True
    function = module.enclosing_function(call)
    if function is None:
        return False
    name, managed = _bound_name(module, call)
    parent = module.parent(call)
    local = isinstance(parent, ast.Assign) and isinstance(parent.targets[0], ast.Name)
    return bool(name and local and not managed and not _escapes(function, name))


def _is_sqlite(module: Module, call: ast.Call) -> bool:
    url = (
        call.args[0]
        if call.args
        else next((k.value for k in call.keywords if k.arg == "url"), None)
    )
    literal = _literal_url(module, url) if url is not None else None
    return literal is not None and literal.lower().startswith("sqlite")


def _in_main_block(module: Module, node: ast.AST) -> bool:
    current = module.parent(node)
    while current is not None:
        if isinstance(current, ast.If) and "__main__" in ast.unparse(current.test):
            return True
        current = module.parent(current)
    return False


_POOL_OK = frozenset({"NullPool", "StaticPool", "SingletonThreadPool", "AssertionPool"})


def _dict_keys(expr: ast.expr) -> set[str] | None:
    if isinstance(expr, ast.Dict):
        if any(key is None for key in expr.keys):
            return None
        return {
            k.value for k in expr.keys if isinstance(k, ast.Constant) and isinstance(k.value, str)
        }
    if isinstance(expr, ast.Call) and isinstance(expr.func, ast.Name) and expr.func.id == "dict":
        if expr.args or any(k.arg is None for k in expr.keywords):
            return None
        return {k.arg for k in expr.keywords if k.arg}
    return None


def _resolved_keys(module: Module, call: ast.Call, name: str) -> set[str] | None:
    """Keys a `**name` spreads, from the dict it is built as in the same function (or the
    module): a literal or dict(...), plus `name[k] = ...`, `name |= {...}`, `name.update(...)`.
    None when it cannot be told."""
    scope: ast.AST = module.enclosing_function(call) or module.tree
    keys: set[str] = set()
    built = False
    for node in ast.walk(scope):
        if isinstance(node, ast.Assign | ast.AnnAssign) and node.value is not None:
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                if isinstance(target, ast.Name) and target.id == name:
                    found = _dict_keys(node.value)
                    if found is None:
                        return None
                    keys |= found
                    built = True
                elif (
                    isinstance(target, ast.Subscript)
                    and isinstance(target.value, ast.Name)
                    and target.value.id == name
                    and isinstance(target.slice, ast.Constant)
                    and isinstance(target.slice.value, str)
                ):
                    keys.add(target.slice.value)
        elif isinstance(node, ast.AugAssign) and isinstance(node.target, ast.Name):
            if node.target.id == name:
                found = _dict_keys(node.value)
                if found is None:
                    return None
                keys |= found
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in {"update", "setdefault"}
            and isinstance(node.func.value, ast.Name)
            and node.func.value.id == name
        ):
            if (
                node.func.attr == "setdefault"
                and node.args
                and isinstance(node.args[0], ast.Constant)
            ):
                keys.add(str(node.args[0].value))
                continue
            for arg in node.args:
                found = _dict_keys(arg)
                if found is None:
                    return None
                keys |= found
            keys |= {k.arg for k in node.keywords if k.arg}
    return keys if built else None


def _mentions_sqlite(expr: ast.AST) -> bool:
    return any(
        isinstance(n, ast.Constant) and isinstance(n.value, str) and "sqlite" in n.value.lower()
        for n in ast.walk(expr)
    )


def _literal_url(module: Module, expr: ast.expr) -> str | None:
    if isinstance(expr, ast.Constant) and isinstance(expr.value, str):
        return expr.value
    if isinstance(expr, ast.JoinedStr) and expr.values and isinstance(expr.values[0], ast.Constant):
        return str(expr.values[0].value)
    if isinstance(expr, ast.Name):
        for node in module.nodes(ast.Assign):
            if any(isinstance(t, ast.Name) and t.id == expr.id for t in node.targets):
                return _literal_url(module, node.value)
    return None


class PoolSettings(Rule):
    code = "KA103"
    name = "engine-pool-settings"
    severity = Severity.WARNING
    summary = "A server-database engine without pool_size, max_overflow and pre-ping/recycle."
    why = (
        "The defaults (5 connections plus 10 overflow per process, no check of idle "
        "connections) are rarely right: multiplied by workers and replicas they exceed the "
        "server's max_connections, or starve under load; and without pool_pre_ping or "
        "pool_recycle a connection closed by the server, a proxy or a failover is handed "
        "to a request, which fails."
    )
    fix = (
        "Size the pool from settings and check connections:\n"
        "    create_async_engine(url, pool_size=settings.pool_size,\n"
        "        max_overflow=settings.max_overflow, pool_pre_ping=True, pool_recycle=1800)\n"
        "(SQLite and NullPool engines are exempt.)"
    )

    def check(self, project: Project) -> Iterator[Finding]:
        for module, call, _ in creations(project, _ENGINES):
            if _one_off(module, call):
                continue
            missing = self._missing(module, call)
            if missing:
                yield self.finding(
                    module,
                    call,
                    f"{_call_name(call)}(...) without {', '.join(missing)}: the pool runs on "
                    "defaults (5 + 10 overflow, no stale-connection check)",
                )

    def _missing(self, module: Module, call: ast.Call) -> list[str]:
        if _is_sqlite(module, call):
            return []
        keys: set[str] = set()
        for keyword in call.keywords:
            if keyword.arg is not None:
                keys.add(keyword.arg)
            elif isinstance(keyword.value, ast.Name):
                spread = _resolved_keys(module, call, keyword.value.id)
                if spread is None:
                    return []
                keys |= spread
            else:
                spread = _dict_keys(keyword.value)
                if spread is None:
                    return []
                keys |= spread
        for keyword in call.keywords:
            if keyword.arg == "poolclass":
                value = _final_name(keyword.value)
                if (
                    value in _POOL_OK
                    or value is None
                    or value not in {"QueuePool", "AsyncAdaptedQueuePool"}
                ):
                    return []
        if "poolclass" in keys:  # set through a dict: the pool is chosen, not defaulted
            return []
        current = module.parent(call)
        while current is not None:
            if isinstance(current, ast.If) and _mentions_sqlite(current.test):
                return []
            current = module.parent(current)
        missing = [k for k in ("pool_size", "max_overflow") if k not in keys]
        if not keys & {"pool_pre_ping", "pool_recycle"}:
            missing.append("pool_pre_ping or pool_recycle")
        return missing


class OnEvent(Rule):
    code = "KA104"
    name = "on-event-handler"
    severity = Severity.WARNING
    summary = '`@app.on_event("startup"|"shutdown")` or on_startup/on_shutdown (deprecated).'
    why = (
        "Start-up and shutdown events are deprecated in Starlette and FastAPI and ignored "
        "once a lifespan is given. They cannot share state with each other except through "
        "globals, and a start-up that fails half-way leaves what it opened unclosed."
    )
    fix = (
        "Move both halves into one lifespan context manager (`FastAPI(lifespan=lifespan)`): "
        "open before `yield`, close after it, in an AsyncExitStack if there are several."
    )

    def check_module(self, project: Project, module: Module) -> Iterator[Finding]:
        if not any(v.startswith(("fastapi", "starlette")) for v in module.imports.values()):
            return
        for call in module.nodes(ast.Call):
            func = call.func
            if (
                isinstance(func, ast.Attribute)
                and func.attr in {"on_event", "add_event_handler"}
                and call.args
                and any(_is_text(call.args[0], e) for e in ("startup", "shutdown"))
            ):
                event = call.args[0].value  # type: ignore[attr-defined]
                yield self.finding(
                    module, call, f'{ast.unparse(func)}("{event}") is deprecated; use a lifespan'
                )
            for keyword in call.keywords:
                if keyword.arg in {"on_startup", "on_shutdown"}:
                    yield self.finding(
                        module,
                        keyword.value,
                        f"{_call_name(call)}({keyword.arg}=...) is deprecated; use a lifespan",
                    )


RULES: tuple[type[Rule], ...] = (ClientAtImport, ClientNeverDisposed, PoolSettings, OnEvent)
