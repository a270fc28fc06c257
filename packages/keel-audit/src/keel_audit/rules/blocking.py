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

from collections.abc import Iterator, Mapping

from keel_audit.callgraph import CallGraph, function_names
from keel_audit.facts import module_fact
from keel_audit.model import Finding, Location, Severity, Step
from keel_audit.rules._blocking_facts import CallFact, FunctionFact, Target, function_facts
from keel_audit.rules._blocking_names import (
    ASYNC_EQUIVALENT,
    BLOCKING_CALLS,
    FILE,
    PATH_TYPES,
    SESSION_FACTORIES,
    SESSION_KIND,
    SYNC_TYPES,
    THREAD_WRAPPERS,
    SyncKind,
)
from keel_audit.rules.base import Rule, location_at
from keel_audit.source import Module, Project


class Analysis:
    """What blocks, per function of one project (memoised), from the functions' facts
    (`_blocking_facts`): no node of any tree is read here. The facts stay packed per
    module; the last few modules read are kept unpacked (`UNPACKED`)."""

    UNPACKED = 32

    def __init__(
        self,
        project: Project,
        owners: Mapping[str, Module],
        constructed: dict[str, dict[str, str]],
    ) -> None:
        self.project = project
        # Every function (`Project.functions`' keys) → the module of its first def.
        self.names = owners
        self.constructed = constructed  # module name → its `constructed`
        self.graph = CallGraph(project, owners)
        self._unpacked: dict[int, tuple[Module, dict[str, FunctionFact]]] = {}
        self._chains: dict[str, tuple[Step, ...] | None] = {}
        self._globals: dict[str, SyncKind | None] = {}

    @classmethod
    def of(cls, project: Project) -> Analysis:
        """Who owns each name (the first def, as `Project.functions`), read once per project."""
        owners: dict[str, Module] = {}
        constructed: dict[str, dict[str, str]] = {}
        for module in project.modules:
            constructed.setdefault(module.name, module_fact(module, function_facts).constructed)
            for name in module_fact(module, function_names):
                owners.setdefault(name, module)
        return cls(project, owners, constructed)

    def function(self, qualname: str) -> FunctionFact | None:
        """The facts of the function of that name, if any of its calls may matter."""
        module = self.names.get(qualname)
        return None if module is None else self._functions_of(module).get(qualname)

    def functions(self, *, handing_to_threads: bool = False) -> Iterator[FunctionFact]:
        """Every function any of whose calls may matter (the rest: no hit), in order; with
        `handing_to_threads`, only those of modules where a call hands one to a thread."""
        for module in self.project.modules:
            if handing_to_threads and not module_fact(module, function_facts).hands_to_threads:
                continue
            yield from self._functions_of(module).values()

    def _functions_of(self, module: Module) -> dict[str, FunctionFact]:
        """The module's facts, unpacked: the functions whose first def is this one."""
        entry = self._unpacked.pop(id(module), None)
        if entry is None:
            found: dict[str, FunctionFact] = {}
            seen: set[str] = set()
            for fact in module_fact(module, function_facts).functions(module):
                name = fact if isinstance(fact, str) else fact.qualname
                if name not in seen:
                    seen.add(name)
                    if not isinstance(fact, str) and self.names.get(name) is module:
                        found[name] = fact
            entry = (module, found)
        self._unpacked[id(module)] = entry  # (most recent last)
        while len(self._unpacked) > self.UNPACKED:
            del self._unpacked[next(iter(self._unpacked))]
        return entry[1]

    def target(self, name: Target) -> str | None:
        """`CallGraph.resolve` of a call's function, from what the fact recorded."""
        candidate, dotted = name
        if candidate is not None:
            return candidate if candidate in self.names else None
        return self.graph.canonical(dotted) if dotted else None

    # -- objects -------------------------------------------------------------------------
    def _constructed(self, made: str | None) -> SyncKind | None:
        """The sync kind of what calling `made` (a dotted name, unresolved) returns."""
        if made is None:
            return None
        name = self.graph.canonical(made)
        if name in SYNC_TYPES:
            return SYNC_TYPES[name]
        if self.global_kind(name, factory=True) is not None:
            return SESSION_KIND
        return None

    def global_kind(self, dotted: str, *, factory: bool = False) -> SyncKind | None:
        """The sync kind of a module-level name of the project (`app.db.redis_client`), or
        with `factory=True` whether it is a session factory (`SessionLocal`)."""
        key = f"{dotted}()" if factory else dotted
        if key in self._globals:
            return self._globals[key]
        self._globals[key] = None  # cycle guard
        module_name, _, attr = dotted.rpartition(".")
        kind: SyncKind | None = None
        if module_name in self.constructed:
            made = self.constructed[module_name].get(attr)
            if factory:
                resolved = self.graph.canonical(made) if made else None
                kind = SESSION_KIND if resolved in SESSION_FACTORIES else None
            else:
                kind = self._constructed(made)
        self._globals[key] = kind
        return kind

    def local_kinds(self, info: FunctionFact) -> dict[str, SyncKind]:
        kinds: dict[str, SyncKind] = {}
        for name, source in info.kinds:
            kind = source if isinstance(source, SyncKind) else self._constructed(source)
            if kind is not None:
                kinds[name] = kind
        return kinds

    # -- direct blocking calls -----------------------------------------------------------
    def direct(self, site: CallFact, kinds: dict[str, SyncKind]) -> tuple[str, str] | None:
        """(what is called, what it blocks on) when this call itself blocks."""
        if site.awaited:
            return None
        target = self.target(site.name)
        if target in BLOCKING_CALLS:
            return target, BLOCKING_CALLS[target]
        if site.attr is None:
            return None
        path = site.path
        if path is True or (
            isinstance(path, tuple) and any(self.graph.canonical(m) in PATH_TYPES for m in path)
        ):
            return f"Path.{site.attr}", FILE
        if site.base is None:
            return None
        kind = kinds.get(site.base)
        if kind is None and site.base_global:
            kind = self.global_kind(self.graph.canonical(site.base_global))
        if kind is None or (site.hops and not kind.chained) or not kind.blocks(site.attr):
            return None
        return f"{site.receiver}.{site.attr}", kind.label

    # -- through the project's own sync functions ---------------------------------------
    def chain(self, qualname: str, depth: int = 0) -> tuple[Step, ...] | None:
        """Steps from inside sync function `qualname` to a blocking call, or None."""
        if qualname in self._chains:
            return self._chains[qualname]
        info = self.function(qualname)
        if info is None or info.is_async or depth > 12:
            return None
        self._chains[qualname] = None  # recursion guard
        if info.cached:
            return None
        kinds = self.local_kinds(info)
        found: tuple[Step, ...] | None = None
        for site in info.calls:
            hit = self.direct(site, kinds)
            if hit is not None and not site.lazy:
                found = (Step(_at(info, site), f"{hit[0]} ({hit[1]})"),)
                break
        if found is None:
            for site in info.calls:
                target = self.target(site.name)
                if target is not None and target in self.names and not site.lazy:
                    inner = self.chain(target, depth + 1)
                    if inner is not None:
                        found = (Step(_at(info, site), f"calls {target}"), *inner)
                        break
        self._chains[qualname] = found
        return found


def _at(info: FunctionFact, site: CallFact) -> Location:
    return location_at(info.module, site.line, site.col)


def _analysis(project: Project) -> Analysis:
    existing = project.__dict__.get("_ka_blocking")
    if not isinstance(existing, Analysis):
        existing = Analysis.of(project)
        project.__dict__["_ka_blocking"] = existing
    return existing


def _is_startup(info: FunctionFact) -> bool:
    """A lifespan or start-up/shutdown hook runs before serving or after it: blocking there
    delays start-up, it does not stall requests (and is what such hooks are for)."""
    name = info.name.lower()
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
        for info in analysis.functions():
            if not info.is_async or info.module.is_test or _is_startup(info):
                continue
            yield from self._check_function(analysis, info)

    def _check_function(self, analysis: Analysis, info: FunctionFact) -> Iterator[Finding]:
        kinds = analysis.local_kinds(info)
        head = Step(location_at(info.module, info.line, info.col), f"async def {info.short_name}")
        for site in info.calls:
            hit = analysis.direct(site, kinds)
            if hit is not None:
                yield self.finding(
                    info.module,
                    _at(info, site),
                    f"{hit[0]} ({hit[1]}) blocks the event loop in async def {info.name}",
                )
                continue
            target = analysis.target(site.name)
            if site.awaited or not target or target not in analysis.names:
                continue
            inner = analysis.chain(target)
            if inner is None:
                continue
            sink = inner[-1].label
            steps = (head, Step(_at(info, site), f"calls {target}"), *inner)
            yield self.finding(
                info.module,
                _at(info, site),
                f"async def {info.name} calls {target}, which blocks: {sink}",
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
        for info in analysis.functions(handing_to_threads=True):
            if info.module.is_test:
                continue
            for site in info.calls:
                found = self._wrapped(analysis, info, site)
                if found is not None:
                    yield found

    def _wrapped(self, analysis: Analysis, info: FunctionFact, site: CallFact) -> Finding | None:
        index = THREAD_WRAPPERS.get(analysis.target(site.name) or "")
        if index is None:
            if site.attr != "run_in_executor":
                return None
            index = 1
        wrapped = site.args[index]
        if wrapped is None:  # no such argument
            return None
        target = analysis.target(wrapped)
        category: str | None = None
        chain: tuple[Step, ...] = ()
        if target in BLOCKING_CALLS:
            category = BLOCKING_CALLS[target]
        elif target is not None and target in analysis.names:
            inner = analysis.chain(target)
            if inner is not None:
                chain = (Step(_at(info, site), f"runs {target} in a thread"), *inner)
                category = inner[-1].label.rsplit("(", 1)[-1].rstrip(")")
        equivalent = ASYNC_EQUIVALENT.get(category or "")
        if equivalent is None:
            return None
        return self.finding(
            info.module,
            _at(info, site),
            f"{target} ({category}) runs in a thread; it has an async equivalent: {equivalent}",
            chain,
        )


RULES: tuple[type[Rule], ...] = (BlockingInAsync, ThreadWrappedIO)
