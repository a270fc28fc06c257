"""Reading odd trees: every file is audited or reported, never a traceback; names resolve."""

from __future__ import annotations

import ast
import gc
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from conftest import write_files
from keel_audit import source as source_module
from keel_audit.callgraph import body_nodes
from keel_audit.config import Config
from keel_audit.facts import module_fact
from keel_audit.formats import FORMATS
from keel_audit.parsing import ParseFailure, parse_source
from keel_audit.project import run_audit
from keel_audit.rules import _web as web
from keel_audit.source import Module, Project

PY314 = """\
type Alias[T] = list[T]

def first[T](xs: list[T]) -> T:
    try:
        return xs[0]
    except ValueError, TypeError:
        raise

songs = {"a": 1}
label = f"{songs["a"]}"
query = t"select {label}"

async def handler():
    import time
    time.sleep(1)
"""


def test_odd_files_are_reported_and_the_audit_goes_on(tmp_path: Path) -> None:
    write_files(
        tmp_path,
        {
            "ok.py": "import time\nasync def f():\n    time.sleep(1)\n",
            "broken.py": "def f(:\n",
            "py2.py": "print 'hello'\n",
            "notpython.py": "#!/bin/sh\necho hi && exit 1\n",
        },
    )
    (tmp_path / "latin.py").write_bytes(b"x = '\xe9'\n")
    (tmp_path / "binary.py").write_bytes(b"\x00\x01\x02 not text")
    (tmp_path / "huge.py").write_text("x = 1\n" * 400_000)
    (tmp_path / "loop").mkdir()
    (tmp_path / "loop" / "again").symlink_to(tmp_path)
    (tmp_path / "dangling.py").symlink_to(tmp_path / "missing.py")

    result = run_audit(tmp_path)

    reasons = dict(result.project.unparsed)
    assert set(reasons) == {
        "broken.py", "py2.py", "notpython.py", "latin.py", "binary.py", "huge.py",
        "loop/again", "dangling.py",
    }  # fmt: skip
    assert reasons["broken.py"].startswith("could not parse: invalid syntax at line 1")
    assert reasons["latin.py"].startswith("could not decode as utf-8")
    assert reasons["binary.py"].startswith("not Python: the file contains NUL bytes")
    assert "over max-file-bytes" in reasons["huge.py"]
    assert reasons["loop/again"].startswith("symlink loop")
    assert reasons["dangling.py"] == "broken symlink"
    assert [f.location.path for f in result.findings if f.code == "KA201"] == ["ok.py"]


def test_declared_encodings_and_bom_are_honoured() -> None:
    latin = parse_source(b"# -*- coding: latin-1 -*-\nname = '\xe9'\n", "a.py")
    bom = parse_source(b"\xef\xbb\xbfx = 1\n", "b.py")
    assert not isinstance(latin, ParseFailure)
    assert "\xe9" in latin.text
    assert not isinstance(bom, ParseFailure)
    assert bom.parser == "ast"


def test_python_314_syntax_is_read_through_libcst_on_the_same_lines(tmp_path: Path) -> None:
    write_files(tmp_path, {"new.py": PY314})
    result = run_audit(tmp_path)
    assert result.project.unparsed == []
    (module,) = result.project.modules
    assert module.parser == "libcst"
    assert module.lines[5] == "    except ValueError, TypeError:"  # the real text is kept
    handler = next(n for n in module.tree.body if isinstance(n, ast.AsyncFunctionDef))
    assert handler.lineno == 13
    assert [(f.code, f.location.line) for f in result.findings if f.code == "KA201"] == [
        ("KA201", 15)
    ]
    joined = [n for n in ast.walk(module.tree) if isinstance(n, ast.JoinedStr)]
    assert [n.lineno for n in joined] == [10]  # the t-string is not taken for an f-string


def test_without_libcst_new_syntax_is_reported_not_crashed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import builtins

    real_import = builtins.__import__

    def no_libcst(name: str, *args: object, **kwargs: object) -> object:
        if name == "libcst":
            raise ImportError(name)
        return real_import(name, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(builtins, "__import__", no_libcst)
    failure = parse_source(PY314.encode(), "new.py")
    assert isinstance(failure, ParseFailure)
    assert "install keel-audit[newsyntax]" in failure.reason


def test_module_names_imports_and_qualified_names(make_project: Callable[..., Project]) -> None:
    project = make_project(
        {
            "backend/app/__init__.py": "",
            "backend/app/core/__init__.py": "",
            "backend/app/core/db.py": """
                import sqlalchemy as sa
                from sqlalchemy.ext import asyncio as sa_async
                from . import models
                from ..api import routes as r
                from .models import User as U

                def helper(): ...
                engine = sa.create_engine("sqlite://")
            """,
            "src/pkg/mod.py": "x = 1\n",
            "scripts/tool.py": "x = 1\n",
        }
    )
    names = sorted(m.name for m in project.modules)
    assert names == ["app", "app.core", "app.core.db", "pkg.mod", "scripts.tool"]
    db = project.module("app.core.db")
    assert isinstance(db, Module)
    assert db.imports["sa"] == "sqlalchemy"
    assert db.imports["models"] == "app.core.models"
    assert db.imports["r"] == "app.api.routes"
    assert db.imports["U"] == "app.core.models.User"

    def qualified(source: str) -> str | None:
        return db.qualified_name(ast.parse(source, mode="eval").body)

    assert qualified("sa.create_engine") == "sqlalchemy.create_engine"
    assert qualified("sa_async.create_async_engine") == (
        "sqlalchemy.ext.asyncio.create_async_engine"
    )
    assert qualified("helper") == "app.core.db.helper"
    assert qualified("open") == "builtins.open"
    assert qualified("unknown_local.attr") is None
    assert qualified("sa.create_engine().connect") is None
    assert "app.core.db.helper" in project.functions


def test_excluded_paths_and_tool_directories_are_not_read(tmp_path: Path) -> None:
    write_files(
        tmp_path,
        {
            "app.py": "x = 1\n",
            ".venv/lib/site.py": "x = 1\n",
            "node_modules/pkg/a.py": "x = 1\n",
            "migrations/versions/0001.py": "x = 1\n",
            "bench/.cache/CACHEDIR.TAG": "Signature: 8a477f597d28d172789f06886806bc55\n",
            "bench/.cache/sdist/pkg.py": "x = 1\n",
            "Dockerfile": "FROM python\n",
        },
    )
    project = Project.load(tmp_path, Config(exclude=("migrations/versions",)))
    assert [m.path for m in project.modules] == ["app.py"]
    assert project.other_files == ["Dockerfile"]  # a tagged cache directory is not entered
    assert project.read_text("Dockerfile") == "FROM python\n"
    assert project.read_text("../outside") is None
    assert project.app_modules == []


def test_deep_nesting_is_reported_not_crashed() -> None:
    source = "x = " + "(" * 2000 + "1" + ")" * 2000 + "\n"
    failure = parse_source(source.encode(), "deep.py")
    assert isinstance(failure, ParseFailure)
    assert failure.reason.startswith("could not parse")


FUNCTION_BODIES = """\
def outer(a=d1(), *, k=d2()):
    before()

    @deco(dx())
    def inner(x=default(), *, y=kwdefault()):
        hidden()

    class Model(base()):
        attribute = hidden_in_class()

    callback = lambda v=lambda_default(): hidden_in_lambda()
    return after(inner, Model)
"""


def test_each_def_body_is_its_own_code_in_order(make_project: Callable[..., Project]) -> None:
    """The one walk's per-def bodies: nested scopes contribute their decorators, defaults
    and bases (in that order), never their own code; the outer def's defaults are not its
    body's. Same as walking the body afresh."""
    module = make_project({"m.py": FUNCTION_BODIES}).modules[0]
    outer, inner = module.nodes(ast.FunctionDef)

    def called(body: list[ast.AST]) -> list[str]:
        return [
            node.func.id
            for node in body
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
        ]

    expected = ["before", "deco", "dx", "default", "kwdefault", "base", "lambda_default", "after"]
    assert called(module.function_body(outer)) == expected
    assert called(list(body_nodes(outer))) == expected
    assert called(module.function_body(inner)) == ["hidden"]
    assert len(module.nodes(ast.Call)) == 13  # the index still holds every call
    hidden = next(n for n in module.nodes(ast.Name) if n.id == "hidden_in_lambda")
    assert isinstance(module.parent(hidden), ast.Call)
    assert isinstance(module.enclosing_function(hidden), ast.FunctionDef)


@pytest.mark.parametrize("enabled", [True, False])
def test_the_cycle_collector_is_paused_only_for_the_audit(tmp_path: Path, enabled: bool) -> None:
    write_files(tmp_path, {"app.py": "x = 1\n"})
    seen: list[bool] = []
    original = Project.load

    def load(
        root: Path, config: Config | None = None, on_module: Callable[[Module], None] | None = None
    ) -> Project:
        seen.append(gc.isenabled())
        return original(root, config, on_module)

    (gc.enable if enabled else gc.disable)()
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(Project, "load", load)
            run_audit(tmp_path)
        assert seen == [False]
        assert gc.isenabled() is enabled
    finally:
        gc.enable()


# --- dropping each module's tree once its facts are taken (flat memory) changes no report

SAMPLE_APP = Path(__file__).parent / "fixtures" / "sample_app"

NOT_AN_APP = {
    "pkg/__init__.py": "",
    "pkg/helpers.py": """
        import time

        import requests
        from sqlalchemy import create_engine

        engine = create_engine("postgresql://db/app")

        def fetch(url):
            return requests.get(url)

        def wait():
            time.sleep(1)
    """,
    "pkg/service.py": """
        from pkg import helpers

        async def handler(url):
            helpers.wait()
            return helpers.fetch(url)
    """,
    "tests/test_service.py": """
        async def test_handler():
            assert True
    """,
}


def _report(root: Path) -> str:
    return FORMATS["json"](run_audit(root))


def _with_trees(root: Path, keep: bool) -> str:
    return FORMATS["json"](run_audit(root, keep_trees=keep))


def test_a_project_without_fastapi_drops_its_trees(tmp_path: Path) -> None:
    write_files(tmp_path, NOT_AN_APP)
    result = run_audit(tmp_path)
    assert len(result.project.modules) == 4
    # Only the module with an engine call is read again (KA103 reads that call's node).
    assert [m.path for m in result.project.modules if "tree" in m.__dict__] == ["pkg/helpers.py"]
    codes = sorted(f.code for f in result.findings)
    assert codes.count("KA201") == 2  # both chains, across modules, from the facts alone
    assert "KA103" in codes


def test_a_fastapi_app_drops_its_trees_too(tmp_path: Path) -> None:
    root = tmp_path / "sample_app"
    shutil.copytree(SAMPLE_APP, root)
    result = run_audit(root)
    kept = [m.path for m in result.project.modules if "tree" in m.__dict__]
    assert len(kept) < len(result.project.modules)
    assert not any("lines" in module.__dict__ for module in result.project.modules)


def test_trees_read_again_stay_few_however_many_modules_the_rules_visit(tmp_path: Path) -> None:
    count = source_module._TreeCache.SIZE + 20
    files = {
        f"app/routes_{n}.py": f"""
            from fastapi import APIRouter
            router = APIRouter()

            @router.get("/items/{n}")
            async def items_{n}(db):
                return await db.fetch_all()
        """
        for n in range(count)
    }
    write_files(tmp_path, {"app/__init__.py": "", **files})
    result = run_audit(tmp_path)
    assert len(result.project.modules) == count + 1
    kept = [m for m in result.project.modules if "tree" in m.__dict__]
    assert len(kept) <= source_module._TreeCache.SIZE
    assert FORMATS["json"](result) == _with_trees(tmp_path, True)


def test_whether_a_route_returns_a_list_is_part_of_its_fact(tmp_path: Path) -> None:
    """KA303 reads it from the route's fact, so it parses again only the handlers that
    return a list (it did so for every GET route)."""
    write_files(
        tmp_path,
        {
            "app/routes.py": """
                from collections.abc import Sequence
                from fastapi import APIRouter
                router = APIRouter()

                @router.get("/a", response_model=list[dict])
                async def by_model(): ...

                @router.get("/b")
                async def by_annotation() -> Sequence[int]: ...

                @router.get("/d")
                async def plain() -> dict: ...

                async def added() -> list[int]: ...
                router.add_api_route("/e", added)
            """
        },
    )
    module = run_audit(tmp_path).project.module("app.routes")
    assert module is not None
    lists = {route.path: route.lists for route in module_fact(module, web._routes)}
    assert lists == {"/a": True, "/b": True, "/d": False, "/e": True}


def test_trees_read_again_are_bounded_by_their_lines_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Large modules read again: past the line bound only the newest are kept (by count
    alone all eight would be), and a tree asked for again is the same code."""
    monkeypatch.setattr(source_module._TreeCache, "LINES", 1_000)
    padding = "".join(f"def helper_{k}(x):\n    return x + {k}\n" for k in range(200))
    write_files(tmp_path, {f"app/big_{n}.py": padding for n in range(8)})
    modules = run_audit(tmp_path).project.modules
    assert not any("tree" in module.__dict__ for module in modules)
    for module in modules:
        assert len(module.tree.body) == 200  # read again
    kept = [module for module in modules if "tree" in module.__dict__]
    assert [m.line_count for m in kept] == [400, 400]  # the newest two: 800 lines of 1,000
    assert kept == modules[-2:]
    assert len(modules[0].tree.body) == 200  # evicted, read once more


@pytest.mark.parametrize("files", [NOT_AN_APP, None], ids=["not-an-app", "sample-app"])
def test_dropping_trees_changes_no_byte_of_the_report(
    tmp_path: Path, files: dict[str, str] | None
) -> None:
    root = tmp_path / "project"
    if files is None:  # the app: its route and lifespan rules read the trees again
        shutil.copytree(SAMPLE_APP, root)
    else:
        write_files(root, files)
    kept = _with_trees(root, True)
    dropped = _with_trees(root, False)
    assert dropped == kept
    assert '"KA201"' in kept


def test_a_dropped_tree_is_read_again_the_same(tmp_path: Path) -> None:
    write_files(tmp_path, NOT_AN_APP)
    module = next(m for m in run_audit(tmp_path).project.modules if m.path == "pkg/service.py")
    assert "tree" not in module.__dict__
    again = module.tree  # parsed again from the file
    expected = ast.parse((tmp_path / "pkg/service.py").read_text())
    assert ast.dump(again, include_attributes=True) == ast.dump(expected, include_attributes=True)
    assert module.nodes(ast.Call)  # and indexed again


def test_a_streamed_rule_that_crashes_loses_its_findings_not_the_audit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from keel_audit.rules.security import HardCodedSecret

    write_files(tmp_path, {**NOT_AN_APP, "pkg/keys.py": 'SECRET_KEY = "s3cr3t-v4lue-for-prod"\n'})
    assert "KA402" in {f.code for f in run_audit(tmp_path).findings}

    def crash(self: object, project: object, module: object) -> None:
        raise RuntimeError("odd code")

    monkeypatch.setattr(HardCodedSecret, "check_module", crash)
    result = run_audit(tmp_path)
    assert "KA402" not in {f.code for f in result.findings}
    assert [code for code, _ in result.rule_errors] == ["KA402"]
    assert "RuntimeError: odd code" in result.rule_errors[0][1]
    assert "KA201" in {f.code for f in result.findings}


def test_a_finding_shows_its_line_read_again_after_the_source_was_dropped(
    tmp_path: Path,
) -> None:
    write_files(tmp_path, NOT_AN_APP)
    result = run_audit(tmp_path)
    service = next(m for m in result.project.modules if m.path == "pkg/service.py")
    assert "lines" not in service.__dict__  # dropped once parsed
    console = FORMATS["console"](result)
    assert "helpers.wait()" in console  # the finding's line, read from the file again
    assert service.line(6).strip() == "return helpers.fetch(url)"
    assert service.line_count == 6


def test_suppressions_of_a_dropped_module_still_apply_and_are_still_checked(
    tmp_path: Path,
) -> None:
    write_files(
        tmp_path,
        {
            "app.py": """
                import time

                async def a():
                    time.sleep(1)  # keel-audit: ignore[KA201] a test double, no loop here

                async def b():
                    time.sleep(1)  # keel-audit: ignore[KA201]
            """
        },
    )
    result = run_audit(tmp_path)
    assert "lines" not in result.project.modules[0].__dict__
    assert result.suppressed == 1
    assert [(f.code, f.location.line) for f in result.findings] == [("KA001", 8), ("KA201", 8)]


def test_a_module_missing_when_its_line_is_read_again_reads_as_empty(tmp_path: Path) -> None:
    path = tmp_path / "gone.py"
    path.write_text("x = 1\ny = 2\n")
    module = Module("gone.py", "gone", ast.parse(path.read_text()), ["x = 1", "y = 2"], False)
    module.source = path
    module.drop_tree()
    assert module.line(2) == "y = 2"  # read again from the file
    other = Module("gone.py", "gone", ast.parse(""), ["x = 1", "y = 2"], False, source=path)
    other.drop_tree()
    path.unlink()
    assert other.line(2) == ""  # no crash: a report shows no code for it
    assert other.line_count == 2  # (counted when it was parsed)


def test_a_call_to_a_library_helper_is_no_blocking_chain_but_a_project_one_is(
    tmp_path: Path,
) -> None:
    write_files(
        tmp_path,
        {
            "pkg/__init__.py": "from pkg.slow import nap\n",
            "pkg/slow.py": "import time\n\ndef nap():\n    time.sleep(1)\n",
            "pkg/api.py": """
                import json
                import pkg

                async def handler(data):
                    json.dumps(data)
                    pkg.nap()
            """,
        },
    )
    result = run_audit(tmp_path)
    assert [(f.code, f.location.path, f.location.line) for f in result.findings] == [
        ("KA201", "pkg/api.py", 7)
    ]
    assert "calls pkg.slow.nap" in result.findings[0].message
