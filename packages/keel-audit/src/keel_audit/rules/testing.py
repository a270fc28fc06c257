"""Test rules: sync tests against an async-database app, async tests nobody runs."""

from __future__ import annotations

import ast
import configparser
import re
from collections.abc import Iterator
from typing import Any, ClassVar

from keel_audit.facts import extractor, is_not_test, is_test, module_fact
from keel_audit.model import Finding, Location, Severity
from keel_audit.rules._web import _memo, is_sample, mentions, nodes_of, walk_body
from keel_audit.rules.base import Rule, location
from keel_audit.source import FunctionNode, Module, Project

_ASYNC_DB = frozenset(
    {
        "sqlalchemy.ext.asyncio.create_async_engine", "sqlalchemy.ext.asyncio.AsyncSession",
        "sqlalchemy.ext.asyncio.async_sessionmaker", "sqlmodel.ext.asyncio.session.AsyncSession",
        "asyncpg.create_pool", "asyncpg.connect", "motor.motor_asyncio.AsyncIOMotorClient",
        "databases.Database", "tortoise.Tortoise.init",
    }
)  # fmt: skip
_TEST_CLIENTS = frozenset({"fastapi.testclient.TestClient", "starlette.testclient.TestClient"})
_ASYNC_RESOURCES = frozenset(
    {
        "sqlalchemy.ext.asyncio.create_async_engine", "sqlalchemy.ext.asyncio.AsyncSession",
        "sqlalchemy.ext.asyncio.async_sessionmaker", "asyncpg.create_pool",
        "httpx.AsyncClient", "motor.motor_asyncio.AsyncIOMotorClient",
    }
)  # fmt: skip
_ASYNC_MARKS = frozenset({"asyncio", "anyio", "trio"})


def async_database_evidence(project: Project) -> tuple[Module, int] | None:
    """Where (module, line) the application (not its tests) opens an async database, if it
    does (asked by a rule and by the score: computed once)."""
    found: tuple[Module, int] | None = _memo("async-db", project, _async_database)
    return found


def _async_database(project: Project) -> tuple[Module, int] | None:
    for module in sorted(project.modules, key=is_sample):  # the product before its benches
        if module.is_test:
            continue
        line = module_fact(module, _async_database_line)
        if line is not None:
            return module, line
    return None


@extractor(when=is_not_test)
def _async_database_line(module: Module) -> int | None:
    """The line of the module's first use of an async database API (a module fact)."""
    if not mentions(module, "async", "asyncpg", "motor", "databases"):
        return None
    for node in nodes_of(module, ast.Call, ast.Name, ast.Attribute):
        if isinstance(node, ast.Call | ast.Name | ast.Attribute):
            expr = node.func if isinstance(node, ast.Call) else node
            if module.qualified_name(expr) in _ASYNC_DB:
                return getattr(node, "lineno", 1)
    return None


def _is_fixture(module: Module, func: FunctionNode) -> bool:
    for decorator in func.decorator_list:
        target = decorator.func if isinstance(decorator, ast.Call) else decorator
        name = module.qualified_name(target) or ""
        if name.endswith(("pytest.fixture", "pytest_asyncio.fixture")) or name == "fixture":
            return True
    return False


_APP_CLASSES = frozenset({"fastapi.FastAPI", "starlette.applications.Starlette"})


def _local_apps(module: Module) -> set[str]:
    """Names the test module binds to a `FastAPI()` / `Starlette()` it builds itself."""
    names: set[str] = set()
    for node in nodes_of(module, ast.Assign):
        if (
            isinstance(node, ast.Assign)
            and isinstance(node.value, ast.Call)
            and module.qualified_name(node.value.func) in _APP_CLASSES
        ):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
    return names


class SyncTestsAsyncDb(Rule):
    code: ClassVar[str] = "KA601"
    name: ClassVar[str] = "sync-tests-async-db"
    severity: ClassVar[Severity] = Severity.WARNING
    summary: ClassVar[str] = (
        "Tests drive an async-database app through sync TestClient or sync fixtures"
    )
    why: ClassVar[str] = (
        "`TestClient` runs the app on an event loop of its own in another thread, and a "
        "sync fixture that calls `asyncio.run()` makes a third. Async engines and pools "
        "(asyncpg, aiosqlite) belong to the loop that created them, so the test data, the "
        "app and the pool end up on different loops: `attached to a different loop` errors, "
        "connections that leak between tests, and tests that cannot await the database to "
        "check what a request did."
    )
    fix: ClassVar[str] = (
        "Write the tests as `async def` with pytest-asyncio or anyio, call the app through "
        "`httpx.AsyncClient(transport=ASGITransport(app=app))` (running the lifespan with "
        "asgi-lifespan), and make the database fixtures async fixtures on the same loop."
    )

    def check(self, project: Project) -> Iterator[Finding]:
        evidence = async_database_evidence(project)
        if evidence is None:
            return
        db_module, db_line = evidence
        where = f"{db_module.path}:{db_line}"
        for module in project.modules:
            if not module.is_test:
                continue
            for at in module_fact(module, _test_clients):
                yield self.finding(
                    module,
                    at,
                    f"sync TestClient used although the app's database is async ({where})",
                )
            for at, fixture, what in module_fact(module, _sync_fixtures):
                yield self.finding(
                    module,
                    at,
                    f"sync fixture {fixture} {what}; the app's database is async ({where})",
                )


@extractor(when=is_test)
def _test_clients(module: Module) -> tuple[Location, ...]:
    """Where a test module builds a sync `TestClient` on the app (a module fact)."""
    if not mentions(module, "TestClient"):
        return ()
    found: list[Location] = []
    local_apps = _local_apps(module)
    for node in nodes_of(module, ast.Call):
        if isinstance(node, ast.Call) and module.qualified_name(node.func) in _TEST_CLIENTS:
            app = node.args[0] if node.args else None
            if isinstance(app, ast.Name) and app.id in local_apps:
                continue  # a throwaway app built in the test, without the database
            if isinstance(app, ast.Call) and module.qualified_name(app.func) in _APP_CLASSES:
                continue
            found.append(location(module, node))
    return tuple(found)


@extractor(when=is_test)
def _sync_fixtures(module: Module) -> tuple[tuple[Location, str, str], ...]:
    """Sync fixtures that hand tests an async resource (an engine, session, pool or client
    made outside the test's loop) or keep an event loop of their own to drive it
    (`run_until_complete`): (where, fixture, what), a module fact. A one-shot
    `asyncio.run(migrate())` at setup is fine: its loop is closed before any test runs."""
    if not mentions(module, "run_until_complete", "async_engine", "Async", "create_pool"):
        return ()
    found: list[tuple[Location, str, str]] = []
    for node in nodes_of(module, ast.FunctionDef):
        if not isinstance(node, ast.FunctionDef) or not _is_fixture(module, node):
            continue
        for inner in walk_body(node):  # a nested `async def` factory runs in the test's loop
            if not isinstance(inner, ast.Call):
                continue
            name = module.qualified_name(inner.func) or ""
            if name in _ASYNC_RESOURCES:
                what = f"creates `{name.rsplit('.', 1)[-1]}` outside the test's event loop"
            elif isinstance(inner.func, ast.Attribute) and inner.func.attr == "run_until_complete":
                what = f"drives its own event loop (`{ast.unparse(inner.func)}`)"
            else:
                continue
            found.append((location(module, inner), node.name, what))
            break
    return tuple(found)


def _ini_options(project: Project) -> list[dict[str, Any]]:
    """pytest's configuration from every place pytest reads it."""
    tables: list[dict[str, Any]] = []
    tool = project.pyproject.get("tool", {})
    pytest_table = tool.get("pytest", {}) if isinstance(tool, dict) else {}
    if isinstance(pytest_table, dict):
        if isinstance(pytest_table.get("ini_options"), dict):
            tables.append(pytest_table["ini_options"])
        tables.append({k: v for k, v in pytest_table.items() if k != "ini_options"})
    for name, section in (
        ("pytest.ini", "pytest"),
        ("setup.cfg", "tool:pytest"),
        ("tox.ini", "pytest"),
    ):
        text = project.read_text(name)
        if text is None:
            continue
        parser = configparser.ConfigParser(interpolation=None)
        try:
            parser.read_string(text)
        except configparser.Error:
            continue
        if parser.has_section(section):
            tables.append(dict(parser.items(section)))
    return tables


_AUTO_FLAG = re.compile(r"--asyncio-mode[= ]auto")


def async_mode_configured(project: Project) -> str | None:
    """The setting that runs unmarked `async def` tests, if any."""
    for table in _ini_options(project):
        if str(table.get("asyncio_mode", "")).strip().strip("\"'") == "auto":
            return "asyncio_mode = auto"
        if str(table.get("trio_mode", "")).strip().lower() == "true":
            return "trio_mode = true"
        addopts = table.get("addopts", "")
        text = " ".join(addopts) if isinstance(addopts, list) else str(addopts)
        if _AUTO_FLAG.search(text):
            return "--asyncio-mode=auto"
    for module in project.modules:
        # A conftest hook that marks every coroutine test (a common anyio setup).
        if (
            module.path.endswith("conftest.py")
            and mentions(module, "pytest_collection_modifyitems")
            and mentions(module, "asyncio", "anyio", "trio")
        ):
            return f"{module.path} pytest_collection_modifyitems"
    return None


def _marks(module: Module, decorators: list[ast.expr]) -> set[str]:
    found: set[str] = set()
    for decorator in decorators:
        target = decorator.func if isinstance(decorator, ast.Call) else decorator
        text = ast.unparse(target)
        if ".mark." in text or text.startswith("mark."):
            found.add(text.rsplit(".", 1)[-1])
        elif text in {"pytest_asyncio.fixture"}:
            found.add("asyncio")
    return found


def _module_marks(module: Module) -> set[str]:
    found: set[str] = set()
    for node in module.tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "pytestmark" for t in node.targets
        ):
            values = (
                node.value.elts if isinstance(node.value, ast.List | ast.Tuple) else [node.value]
            )
            found |= _marks(module, list(values))
    return found


class AsyncTestsNoMode(Rule):
    code: ClassVar[str] = "KA602"
    name: ClassVar[str] = "async-tests-no-mode"
    severity: ClassVar[Severity] = Severity.WARNING
    summary: ClassVar[str] = "async def tests with no async test mode or marker to run them"
    why: ClassVar[str] = (
        "pytest cannot run a coroutine by itself: without pytest-asyncio in auto mode, an "
        "`@pytest.mark.asyncio`/`anyio` marker, or a hook that adds one, an `async def "
        "test_` is collected, never awaited and reported as skipped or failed with a "
        "warning (depending on the pytest version). Either way the assertions inside it "
        "never run, and a green CI proves nothing about that code."
    )
    fix: ClassVar[str] = (
        'Set `asyncio_mode = "auto"` under `[tool.pytest.ini_options]` (pytest-asyncio), '
        "or mark the tests (`pytestmark = pytest.mark.anyio` with an `anyio_backend` "
        "fixture)."
    )

    def check(self, project: Project) -> Iterator[Finding]:
        if async_mode_configured(project) is not None:
            return
        for module in project.modules:
            if not module.is_test:
                continue
            unmarked = module_fact(module, _unmarked_async_tests)
            if unmarked is not None:
                at, name, count = unmarked
                more = f" (and {count - 1} more in this file)" if count > 1 else ""
                yield self.finding(
                    module,
                    at,
                    f"async test {name} has no asyncio/anyio marker and no async mode "
                    f"is configured{more}",
                )

    @staticmethod
    def _class_marks(module: Module) -> dict[int, set[str]]:
        marks: dict[int, set[str]] = {}
        for node in nodes_of(module, ast.ClassDef):
            if isinstance(node, ast.ClassDef):
                own = _marks(module, node.decorator_list)
                if any(ast.unparse(base).endswith("AsyncioTestCase") for base in node.bases):
                    own.add("asyncio")  # unittest runs these coroutines itself
                for stmt in node.body:
                    if isinstance(stmt, ast.Assign) and any(
                        isinstance(t, ast.Name) and t.id == "pytestmark" for t in stmt.targets
                    ):
                        values = (
                            stmt.value.elts
                            if isinstance(stmt.value, ast.List | ast.Tuple)
                            else [stmt.value]
                        )
                        own |= _marks(module, list(values))
                for stmt in node.body:
                    marks[id(stmt)] = own
        return marks

    @staticmethod
    def _unmarked(
        module: Module, class_marks: dict[int, set[str]]
    ) -> Iterator[ast.AsyncFunctionDef]:
        for node in nodes_of(module, ast.AsyncFunctionDef):
            if isinstance(node, ast.AsyncFunctionDef) and node.name.startswith("test"):
                marks = _marks(module, node.decorator_list) | class_marks.get(id(node), set())
                if not marks & _ASYNC_MARKS:
                    yield node


RULES: tuple[type[Rule], ...] = (SyncTestsAsyncDb, AsyncTestsNoMode)


@extractor(when=is_test)
def _unmarked_async_tests(module: Module) -> tuple[Location, str, int] | None:
    """The first `async def test…` no asyncio/anyio marker reaches, with its name and how
    many such tests the module has (a module fact)."""
    if not mentions(module, "async def test") or _module_marks(module) & _ASYNC_MARKS:
        return None
    unmarked = list(AsyncTestsNoMode._unmarked(module, AsyncTestsNoMode._class_marks(module)))
    if not unmarked:
        return None
    return location(module, unmarked[0]), unmarked[0].name, len(unmarked)
