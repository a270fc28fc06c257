"""KA2xx (engine's part): blocking calls reached from async code, and thread-pool wrapping.

What blocks is decided from the source alone: a call whose dotted name is a known blocking
API (`requests.get`, `time.sleep`, `open`, `sqlite3.connect`, `subprocess.run`, ...), a
method on a `pathlib.Path`, or a method on an object the source shows is a sync client
(a parameter annotated `Session`, a module-level `redis.Redis(...)`, a local
`requests.Session()`). An `async def` that makes such a call, or calls a sync function of
the project that does (at any depth), is reported with the chain of calls. A call that is
awaited is never blocking; a function handed to a thread (`to_thread(f)`) is not called.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass

from keel_audit.callgraph import CallGraph, CallSite, FunctionInfo
from keel_audit.model import Finding, Severity, Step
from keel_audit.rules.base import Rule, location
from keel_audit.source import Module, Project

HTTP = "sync HTTP"
FILE = "file I/O"
_HTTP_VERBS = ("get", "post", "put", "patch", "delete", "head", "options", "request")

# Calls that block the thread, by dotted name → what they block on.
BLOCKING_CALLS: dict[str, str] = {
    **{f"requests.{verb}": HTTP for verb in _HTTP_VERBS},
    **{f"httpx.{verb}": HTTP for verb in (*_HTTP_VERBS, "stream")},
    "urllib.request.urlopen": HTTP,
    "urllib.request.urlretrieve": HTTP,
    "http.client.HTTPConnection": HTTP,
    "http.client.HTTPSConnection": HTTP,
    "time.sleep": "sleep",
    "builtins.open": FILE,
    "io.open": FILE,
    "shutil.copyfile": FILE,
    "shutil.copy": FILE,
    "shutil.copy2": FILE,
    "shutil.copytree": FILE,
    "shutil.rmtree": FILE,
    "shutil.move": FILE,
    "sqlite3.connect": "sync database driver",
    "psycopg2.connect": "sync database driver",
    "psycopg.connect": "sync database driver",
    "pymysql.connect": "sync database driver",
    "MySQLdb.connect": "sync database driver",
    "mysql.connector.connect": "sync database driver",
    "sqlalchemy.orm.Session": "sync SQLAlchemy session",
    "sqlmodel.Session": "sync SQLAlchemy session",
    "subprocess.run": "subprocess",
    "subprocess.call": "subprocess",
    "subprocess.check_call": "subprocess",
    "subprocess.check_output": "subprocess",
    "os.system": "subprocess",
    "os.popen": "subprocess",
    "smtplib.SMTP": "sync SMTP",
    "smtplib.SMTP_SSL": "sync SMTP",
    "socket.create_connection": "socket",
}
PATH_TYPES = frozenset({"pathlib.Path", "pathlib.PurePath", "pathlib.PosixPath"})
PATH_METHODS = frozenset({"read_text", "read_bytes", "write_text", "write_bytes", "open"})

_ANY = frozenset[str]()  # "every method blocks, except the listed harmless ones"


@dataclass(frozen=True)
class SyncKind:
    label: str
    methods: frozenset[str]  # methods that block; empty: all except `harmless`
    harmless: frozenset[str] = frozenset()
    chained: bool = False  # methods of attributes block too (`client.db.users.find()`)

    def blocks(self, method: str) -> bool:
        if method.startswith("_"):
            return False
        return method in self.methods if self.methods else method not in self.harmless


_HTTP_CLIENT = SyncKind("sync HTTP client", frozenset({*_HTTP_VERBS, "send", "stream"}))
_REDIS = SyncKind(
    "sync Redis client",
    _ANY,
    frozenset({"pipeline", "pubsub", "lock", "register_script", "connection_pool", "close"}),
)
_BOTO = SyncKind(
    "boto3 client",
    _ANY,
    frozenset(
        {"get_paginator", "can_paginate", "get_waiter", "meta", "exceptions",
         "generate_presigned_url", "generate_presigned_post", "close"}
    ),
)  # fmt: skip
_SESSION = SyncKind(
    "sync SQLAlchemy session",
    frozenset(
        {"execute", "query", "commit", "scalars", "scalar", "get", "flush", "refresh",
         "merge", "exec", "rollback", "connection", "delete"}
    ),
)  # fmt: skip
_ENGINE = SyncKind("sync SQLAlchemy engine", frozenset({"connect", "begin", "raw_connection"}))
_MONGO = SyncKind("sync MongoDB client", _ANY, frozenset({"close"}), chained=True)

# Constructors and annotations whose object is a sync client.
SYNC_TYPES: dict[str, SyncKind] = {
    "requests.Session": _HTTP_CLIENT,
    "requests.sessions.Session": _HTTP_CLIENT,
    "httpx.Client": _HTTP_CLIENT,
    "redis.Redis": _REDIS,
    "redis.StrictRedis": _REDIS,
    "redis.from_url": _REDIS,
    "redis.Redis.from_url": _REDIS,
    "redis.client.Redis": _REDIS,
    "redis.client.StrictRedis": _REDIS,
    "boto3.client": _BOTO,
    "boto3.resource": _BOTO,
    "sqlalchemy.orm.Session": _SESSION,
    "sqlalchemy.orm.session.Session": _SESSION,
    "sqlmodel.Session": _SESSION,
    "sqlalchemy.create_engine": _ENGINE,
    "sqlalchemy.engine.create_engine": _ENGINE,
    "sqlmodel.create_engine": _ENGINE,
    "pymongo.MongoClient": _MONGO,
}
# Module-level factories whose *call* makes a sync session (`SessionLocal()`).
SESSION_FACTORIES = frozenset({"sqlalchemy.orm.sessionmaker", "sqlalchemy.orm.scoped_session"})

# Thread-pool wrappers: (dotted name, index of the function argument).
THREAD_WRAPPERS: dict[str, int] = {
    "asyncio.to_thread": 0,
    "starlette.concurrency.run_in_threadpool": 0,
    "fastapi.concurrency.run_in_threadpool": 0,
    "anyio.to_thread.run_sync": 0,
}
# Categories with a real async equivalent, and that equivalent (KA202).
ASYNC_EQUIVALENT: dict[str, str] = {
    HTTP: "httpx.AsyncClient",
    "sync HTTP client": "httpx.AsyncClient",
    "sleep": "asyncio.sleep",
    "sync database driver": "an async driver (asyncpg, aiosqlite, psycopg's AsyncConnection)",
    "sync SQLAlchemy session": "AsyncSession",
    "sync SQLAlchemy engine": "create_async_engine",
    "sync Redis client": "redis.asyncio",
    "boto3 client": "aioboto3 / aiobotocore",
    "sync MongoDB client": "motor / pymongo's AsyncMongoClient",
    "subprocess": "asyncio.create_subprocess_exec",
    "sync SMTP": "aiosmtplib",
}


def _unwrap_annotation(module: Module, expr: ast.expr | None, depth: int = 0) -> str | None:
    """`Session`, `Annotated[Session, Depends(...)]`, `"Session"`, `SessionDep` (a module
    alias of an Annotated) or `Session | None` → "sqlalchemy.orm.Session"."""
    if expr is None or depth > 3:
        return None
    if isinstance(expr, ast.Constant) and isinstance(expr.value, str):
        try:
            parsed = ast.parse(expr.value, mode="eval").body
        except SyntaxError:
            return None
        return _unwrap_annotation(module, parsed, depth + 1)
    if isinstance(expr, ast.Subscript):
        name = module.qualified_name(expr.value) or ""
        if name.endswith(("Annotated", "Optional")):
            inner = expr.slice.elts[0] if isinstance(expr.slice, ast.Tuple) else expr.slice
            return _unwrap_annotation(module, inner, depth + 1)
        return None
    if isinstance(expr, ast.BinOp) and isinstance(expr.op, ast.BitOr):
        return _unwrap_annotation(module, expr.left, depth + 1) or _unwrap_annotation(
            module, expr.right, depth + 1
        )
    resolved = module.qualified_name(expr)
    if resolved and resolved.startswith(module.name + ".") and isinstance(expr, ast.Name):
        alias = _module_assignments(module).get(expr.id)
        if alias is not None:
            return _unwrap_annotation(module, alias, depth + 1)
    return resolved


def _module_assignments(module: Module) -> dict[str, ast.expr]:
    found: dict[str, ast.expr] = module.__dict__.get("_ka_assignments", {})
    if "_ka_assignments" in module.__dict__:
        return found
    for node in module.tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target = node.targets[0]
            if isinstance(target, ast.Name):
                found[target.id] = node.value
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value:
            found[node.target.id] = node.value
    module.__dict__["_ka_assignments"] = found
    return found


class Analysis:
    """What blocks, per function of one project (memoised)."""

    def __init__(self, project: Project) -> None:
        self.project = project
        self.graph = CallGraph.of(project)
        self._chains: dict[str, tuple[Step, ...] | None] = {}
        self._globals: dict[str, SyncKind | None] = {}

    # -- objects -------------------------------------------------------------------------
    def _constructed(self, module: Module, value: ast.expr | None) -> SyncKind | None:
        if not isinstance(value, ast.Call):
            return None
        name = self.graph.resolve(module, value.func)
        if name is None:
            return None
        if name in SYNC_TYPES:
            return SYNC_TYPES[name]
        if self.global_kind(name, factory=True) is not None:
            return _SESSION
        return None

    def global_kind(self, dotted: str, *, factory: bool = False) -> SyncKind | None:
        """The sync kind of a module-level name of the project (`app.db.redis_client`), or
        with `factory=True` whether it is a session factory (`SessionLocal`)."""
        key = f"{dotted}()" if factory else dotted
        if key in self._globals:
            return self._globals[key]
        self._globals[key] = None  # cycle guard
        module_name, _, attr = dotted.rpartition(".")
        module = self.project.module(module_name)
        kind: SyncKind | None = None
        if module is not None:
            value = _module_assignments(module).get(attr)
            if factory:
                if isinstance(value, ast.Call):
                    made = self.graph.resolve(module, value.func)
                    kind = _SESSION if made in SESSION_FACTORIES else None
            else:
                kind = self._constructed(module, value)
        self._globals[key] = kind
        return kind

    def local_kinds(self, info: FunctionInfo) -> dict[str, SyncKind]:
        kinds: dict[str, SyncKind] = {}
        arguments = info.node.args
        for arg in [*arguments.posonlyargs, *arguments.args, *arguments.kwonlyargs]:
            kind = SYNC_TYPES.get(_unwrap_annotation(info.module, arg.annotation) or "")
            if kind is not None:
                kinds[arg.arg] = kind
        for node in info.body:
            if isinstance(node, ast.Assign):
                kind = self._constructed(info.module, node.value)
                if kind is not None:
                    for target in node.targets:
                        if isinstance(target, ast.Name):
                            kinds[target.id] = kind
            elif isinstance(node, ast.With):
                for item in node.items:
                    kind = self._constructed(info.module, item.context_expr)
                    if kind is not None and isinstance(item.optional_vars, ast.Name):
                        kinds[item.optional_vars.id] = kind
        return kinds

    # -- direct blocking calls -----------------------------------------------------------
    def direct(
        self, info: FunctionInfo, site: CallSite, kinds: dict[str, SyncKind]
    ) -> tuple[str, str] | None:
        """(what is called, what it blocks on) when this call itself blocks."""
        if site.awaited:
            return None
        if site.target in BLOCKING_CALLS:
            return site.target, BLOCKING_CALLS[site.target]
        func = site.node.func
        if not isinstance(func, ast.Attribute):
            return None
        receiver = func.value
        if func.attr in PATH_METHODS and self._is_path(info, receiver):
            return f"Path.{func.attr}", FILE
        base = receiver
        hops = 0
        while isinstance(base, ast.Attribute):
            base, hops = base.value, hops + 1
        if not isinstance(base, ast.Name):
            return None
        kind = kinds.get(base.id)
        if kind is None:
            dotted = info.module.qualified_name(base)
            if dotted and base.id not in _local_names(info):
                kind = self.global_kind(self.graph.canonical(dotted))
        if kind is None or (hops and not kind.chained) or not kind.blocks(func.attr):
            return None
        return f"{ast.unparse(receiver)}.{func.attr}", kind.label

    def _is_path(self, info: FunctionInfo, expr: ast.expr) -> bool:
        if isinstance(expr, ast.Call):
            return self.graph.resolve(info.module, expr.func) in PATH_TYPES
        if isinstance(expr, ast.BinOp) and isinstance(expr.op, ast.Div):
            return self._is_path(info, expr.left)
        if isinstance(expr, ast.Attribute) and expr.attr in {"parent", "with_suffix"}:
            return self._is_path(info, expr.value)
        if isinstance(expr, ast.Name):
            arguments = info.node.args
            for arg in [*arguments.posonlyargs, *arguments.args, *arguments.kwonlyargs]:
                if arg.arg == expr.id:
                    return _unwrap_annotation(info.module, arg.annotation) in PATH_TYPES
            for node in info.body:
                if (
                    isinstance(node, ast.Assign)
                    and any(isinstance(t, ast.Name) and t.id == expr.id for t in node.targets)
                    and self._is_path(info, node.value)
                ):
                    return True
        return False

    # -- through the project's own sync functions ---------------------------------------
    def chain(self, qualname: str, depth: int = 0) -> tuple[Step, ...] | None:
        """Steps from inside sync function `qualname` to a blocking call, or None."""
        if qualname in self._chains:
            return self._chains[qualname]
        info = self.graph.info(qualname)
        if info is None or info.is_async or depth > 12:
            return None
        self._chains[qualname] = None  # recursion guard
        if _cached_function(info):
            self._chains[qualname] = None
            return None
        kinds = self.local_kinds(info)
        found: tuple[Step, ...] | None = None
        for site in info.calls:
            hit = self.direct(info, site, kinds)
            if hit is not None and not _lazy_init(info, site.node):
                found = (Step(location(info.module, site.node), f"{hit[0]} ({hit[1]})"),)
                break
        if found is None:
            for site in info.calls:
                if site.internal and site.target and not _lazy_init(info, site.node):
                    inner = self.chain(site.target, depth + 1)
                    if inner is not None:
                        found = (
                            Step(location(info.module, site.node), f"calls {site.target}"),
                            *inner,
                        )
                        break
        self._chains[qualname] = found
        return found


def _local_names(info: FunctionInfo) -> frozenset[str]:
    cached = info.__dict__.get("_ka_locals")
    if isinstance(cached, frozenset):
        return cached
    names = {a.arg for a in ast.walk(info.node.args) if isinstance(a, ast.arg)}
    for node in info.body:
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
    frozen = frozenset(names)
    info.__dict__["_ka_locals"] = frozen
    return frozen


_CACHES = frozenset({"functools.lru_cache", "functools.cache", "functools.cached_property"})


def _cached_function(info: FunctionInfo) -> bool:
    """`@lru_cache` / `@cache`: the body runs once, not per request."""
    for decorator in info.node.decorator_list:
        target = decorator.func if isinstance(decorator, ast.Call) else decorator
        if info.module.qualified_name(target) in _CACHES:
            return True
    return False


def _lazy_init(info: FunctionInfo, node: ast.AST) -> bool:
    """Inside `if _thing is None:` / `if not _thing:` on a `global` of the function: a
    one-time initialisation (a logger, a client), not work done per call."""
    globals_ = {name for n in info.body if isinstance(n, ast.Global) for name in n.names}
    if not globals_:
        return False
    current = info.module.parent(node)
    while current is not None and current is not info.node:
        if isinstance(current, ast.If):
            test = current.test
            if isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not):
                test = test.operand
            if isinstance(test, ast.Compare) and len(test.ops) == 1:
                test = test.left
            if isinstance(test, ast.Name) and test.id in globals_:
                return True
        current = info.module.parent(current)
    return False


def _analysis(project: Project) -> Analysis:
    existing = project.__dict__.get("_ka_blocking")
    if not isinstance(existing, Analysis):
        existing = Analysis(project)
        project.__dict__["_ka_blocking"] = existing
    return existing


def _is_startup(info: FunctionInfo) -> bool:
    """A lifespan or start-up/shutdown hook runs before serving or after it: blocking there
    delays start-up, it does not stall requests (and is what such hooks are for)."""
    name = info.node.name.lower()
    return "lifespan" in name or "startup" in name


class BlockingInAsync(Rule):
    code = "KA201"
    name = "blocking-call-in-async"
    severity = Severity.ERROR
    summary = "A blocking call (HTTP, sleep, file, sync DB/Redis, subprocess) in async code."
    why = (
        "An async endpoint runs on the event loop that serves every request of the process. "
        "A blocking call inside it (requests.get, time.sleep, a sync database session, open) "
        "stops all of them until it returns: one slow upstream makes the whole service slow, "
        "and timeouts pile up far from the cause. Calling a sync helper of your own that "
        "blocks is the same thing one level down, which is why the chain is shown."
    )
    fix = (
        "Use the async equivalent (httpx.AsyncClient, asyncio.sleep, AsyncSession, "
        "redis.asyncio, aiofiles/anyio for files, asyncio.create_subprocess_exec), or, for "
        "work with no async form, hand it to a thread: `await asyncio.to_thread(helper, x)`. "
        "Or make the endpoint a plain `def`, which FastAPI runs in its thread pool."
    )

    def check(self, project: Project) -> Iterator[Finding]:
        analysis = _analysis(project)
        for info in analysis.graph.all():
            if not info.is_async or info.module.is_test or _is_startup(info):
                continue
            yield from self._check_function(analysis, info)

    def _check_function(self, analysis: Analysis, info: FunctionInfo) -> Iterator[Finding]:
        kinds = analysis.local_kinds(info)
        head = Step(location(info.module, info.node), f"async def {info.short_name}")
        for site in info.calls:
            hit = analysis.direct(info, site, kinds)
            if hit is not None:
                yield self.finding(
                    info.module,
                    site.node,
                    f"{hit[0]} ({hit[1]}) blocks the event loop in async def {info.node.name}",
                )
                continue
            if site.awaited or not site.internal or not site.target:
                continue
            inner = analysis.chain(site.target)
            if inner is None:
                continue
            sink = inner[-1].label
            steps = (head, Step(location(info.module, site.node), f"calls {site.target}"), *inner)
            yield self.finding(
                info.module,
                site.node,
                f"async def {info.node.name} calls {site.target}, which blocks: {sink}",
                steps,
            )


class ThreadWrappedIO(Rule):
    code = "KA202"
    name = "thread-wrapped-io"
    severity = Severity.INFO
    summary = "run_in_executor / run_in_threadpool / to_thread wrapping I/O that has an async API."
    why = (
        "A thread per call works, but each one holds a slot of a small pool (40 in AnyIO, "
        "min(32, cpus + 4) in asyncio): under load requests queue for threads, not for the "
        "network. HTTP, Redis, databases, sleeps and subprocesses all have async clients "
        "that need no thread at all."
    )
    fix = (
        "Call the async equivalent directly (named in the message). Keep the thread for "
        "CPU-bound or sync-only work (file I/O, image processing, a library with no async API)."
    )

    def check(self, project: Project) -> Iterator[Finding]:
        analysis = _analysis(project)
        for info in analysis.graph.all():
            if info.module.is_test:
                continue
            for site in info.calls:
                found = self._wrapped(analysis, info, site)
                if found is not None:
                    yield found

    def _wrapped(self, analysis: Analysis, info: FunctionInfo, site: CallSite) -> Finding | None:
        call = site.node
        index = THREAD_WRAPPERS.get(site.target or "")
        if index is None:
            func = call.func
            if not (isinstance(func, ast.Attribute) and func.attr == "run_in_executor"):
                return None
            index = 1
        if len(call.args) <= index:
            return None
        wrapped = call.args[index]
        if isinstance(wrapped, ast.Lambda) and isinstance(wrapped.body, ast.Call):
            wrapped = wrapped.body.func
        target = analysis.graph.resolve(info.module, wrapped, info.qualname)
        category: str | None = None
        chain: tuple[Step, ...] = ()
        what = target or ast.unparse(wrapped)
        if target in BLOCKING_CALLS:
            category = BLOCKING_CALLS[target]
        elif target in analysis.graph.functions:
            inner = analysis.chain(target)
            if inner is not None:
                chain = (Step(location(info.module, call), f"runs {target} in a thread"), *inner)
                category = inner[-1].label.rsplit("(", 1)[-1].rstrip(")")
        equivalent = ASYNC_EQUIVALENT.get(category or "")
        if equivalent is None:
            return None
        return self.finding(
            info.module,
            call,
            f"{what} ({category}) runs in a thread; it has an async equivalent: {equivalent}",
            chain,
        )


RULES: tuple[type[Rule], ...] = (BlockingInAsync, ThreadWrappedIO)
