"""Observability/ops rules: work that BackgroundTasks may lose, no health route."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from typing import ClassVar

from keel_audit.facts import extractor, is_not_test, module_fact
from keel_audit.model import Finding, Location, Severity, Step
from keel_audit.rules._web import (
    annotation_text,
    is_sample,
    iter_routes,
    literal,
    mentions,
    nodes_of,
    resolve_function,
    str_value,
    walk_body,
)
from keel_audit.rules.base import Rule
from keel_audit.source import FunctionNode, Module, Project

_SLEEPS = frozenset({"time.sleep", "asyncio.sleep", "anyio.sleep", "trio.sleep"})
_RETRY_DECORATORS = ("tenacity.retry", "backoff.on_exception", "backoff.on_predicate", "retry")


def _long_work(module: Module, func: FunctionNode) -> str | None:
    """Why a task function is long or must not be lost, or None."""
    for decorator in func.decorator_list:
        target = decorator.func if isinstance(decorator, ast.Call) else decorator
        name = module.qualified_name(target) or ast.unparse(target)
        if name.endswith(_RETRY_DECORATORS):
            return f"retries (@{ast.unparse(target)})"
    for node in walk_body(func):
        if isinstance(node, ast.While):
            if any(isinstance(n, ast.Call) for n in ast.walk(node)):
                return f"loops (while at {module.path}:{node.lineno})"
        elif isinstance(node, ast.For | ast.AsyncFor):
            if any(
                isinstance(n, ast.Call | ast.Await) for stmt in node.body for n in ast.walk(stmt)
            ):
                return f"processes a batch (for loop at {module.path}:{node.lineno})"
        elif isinstance(node, ast.Call) and module.qualified_name(node.func) in _SLEEPS:
            return f"sleeps (`{ast.unparse(node)}` at {module.path}:{node.lineno})"
    return None


class BackgroundTaskLongWork(Rule):
    code: ClassVar[str] = "KA701"
    name: ClassVar[str] = "background-task-long-work"
    severity: ClassVar[Severity] = Severity.INFO
    summary: ClassVar[str] = (
        "BackgroundTasks runs long or must-not-be-lost work (loops, sleeps, retries)"
    )
    why: ClassVar[str] = (
        "A FastAPI background task runs inside the web worker after the response, with no "
        "persistence, no retry and no visibility: a deploy, an OOM kill or a crash loses "
        "it, and while it loops or sleeps it holds the worker's memory (and, if sync, a "
        "thread of the pool every sync endpoint shares). Batch jobs and retried deliveries "
        "need a queue."
    )
    fix: ClassVar[str] = (
        "Enqueue it on a task queue with acknowledgement and retries (taskiq, arq, Celery, "
        "Dramatiq) and keep BackgroundTasks for short, best-effort follow-ups such as "
        "emitting a metric."
    )

    def check(self, project: Project) -> Iterator[Finding]:
        for route in iter_routes(project):
            if route.module.is_test or not mentions(route.module, "BackgroundTasks"):
                continue
            tasks = {
                arg.arg
                for arg in [*route.func.args.args, *route.func.args.kwonlyargs]
                if "BackgroundTasks" in annotation_text(arg.annotation)
            }
            if not tasks:
                continue
            for node in walk_body(route.func):
                if not (
                    isinstance(node, ast.Call)
                    and isinstance(node.func, ast.Attribute)
                    and node.func.attr == "add_task"
                    and isinstance(node.func.value, ast.Name)
                    and node.func.value.id in tasks
                    and node.args
                ):
                    continue
                probe = ast.Call(func=node.args[0], args=[], keywords=[])
                target = resolve_function(project, route.module, probe)
                if target is None:
                    continue
                task_module, task = target
                reason = _long_work(task_module, task)
                if reason is None:
                    continue
                chain = (
                    Step(Location(route.module.path, node.lineno, node.col_offset), "add_task"),
                    Step(Location(task_module.path, task.lineno, task.col_offset), task.name),
                )
                yield self.finding(
                    route.module,
                    node,
                    f"{route.func.name} hands {task.name} to BackgroundTasks, and it {reason}",
                    chain,
                )


_HEALTH_PATH = re.compile(
    r"/(_?health[\w-]*|livez|readyz|ready|readiness|liveness|ping|heartbeat|status)(/|$)",
    re.IGNORECASE,
)
_HEALTH_PACKAGES = ("fastapi_health", "healthcheck", "fastapi_healthchecks", "starlette_exporter")


def _app_creations(project: Project) -> list[tuple[Module, ast.Call]]:
    found: list[tuple[Module, ast.Call]] = []
    for module in project.app_modules:
        if module.is_test or is_sample(module):
            continue
        for node in nodes_of(module, ast.Call):
            if isinstance(node, ast.Call) and module.qualified_name(node.func) == "fastapi.FastAPI":
                found.append((module, node))
    return found


def health_route(project: Project) -> str | None:
    """Where the application serves a health or readiness check, if it does: a `health*`,
    `livez` or `readyz` route first, then the vaguer names (`/status` may be anything)."""
    found: list[tuple[int, str]] = []
    for module in project.modules:
        if module.is_test:
            continue
        if any(value.startswith(_HEALTH_PACKAGES) for value in module.imports.values()):
            return f"{module.path} (imports a health-check package)"
        found.extend(module_fact(module, _health_routes))
    return min(found)[1] if found else None


@extractor(when=is_not_test)
def _health_routes(module: Module) -> tuple[tuple[int, str], ...]:
    """(rank, where) of the module's routes that look like health checks (a module fact)."""
    found: list[tuple[int, str]] = []
    if mentions(module, "health", "ready", "ping", "live", "status", "heartbeat"):
        for node in nodes_of(module, ast.Call):
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if name not in {
                "get", "head", "api_route", "add_api_route", "route", "add_route", "mount",
                "Route", "APIRoute", "include_router",
            }:  # fmt: skip
                continue
            paths = [str_value(arg) for arg in node.args[:1]]
            paths += [str_value(k.value) for k in node.keywords if k.arg in {"path", "prefix"}]
            for path in paths:
                match = _HEALTH_PATH.search(path or "")
                if path and path.startswith("/") and match:
                    rank = (
                        0
                        if match.group(1)
                        .lower()
                        .lstrip("_")
                        .startswith(("health", "livez", "readyz"))
                        else 1
                    )
                    found.append((rank, f"{module.path}:{node.lineno} ({path})"))
    return tuple(found)


class NoHealthRoute(Rule):
    code: ClassVar[str] = "KA702"
    name: ClassVar[str] = "no-health-route"
    severity: ClassVar[Severity] = Severity.WARNING
    summary: ClassVar[str] = "The application has no health or readiness route"
    why: ClassVar[str] = (
        "Load balancers, Kubernetes and container platforms decide whether to send traffic "
        "to an instance, and whether to restart it, by probing a route. Without one they "
        "probe `/` (which may need auth or the database) or nothing at all: a worker whose "
        "database pool is gone keeps receiving requests, and a deploy routes traffic to "
        "instances that have not finished starting."
    )
    fix: ClassVar[str] = (
        "Add a cheap liveness route (`GET /health` → 200 while the process runs) and a "
        "readiness route (`GET /ready`) that checks the database and cache with a short "
        "timeout and returns 503 when they fail; point the orchestrator's probes at them."
    )

    def check(self, project: Project) -> Iterator[Finding]:
        apps = _app_creations(project)
        if not apps or health_route(project) is not None:
            return
        module, node = apps[0]
        title = literal(next((k.value for k in node.keywords if k.arg == "title"), None))
        label = f" ({title})" if isinstance(title, str) else ""
        yield self.finding(
            module,
            node,
            f"FastAPI app{label} has no health or readiness route (no /health, /ready, "
            "/livez, /ping route anywhere in the project)",
        )


RULES: tuple[type[Rule], ...] = (BackgroundTaskLongWork, NoHealthRoute)
