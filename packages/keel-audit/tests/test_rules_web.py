"""The shared helpers of the KA3xx-KA7xx rules: routes, settings fields, call resolution."""

from __future__ import annotations

import ast
from collections.abc import Callable

from keel_audit.rules._web import (
    field_value,
    iter_routes,
    literal,
    resolve_function,
    settings_default,
)
from keel_audit.rules.api import PatchWithoutExcludeUnset
from keel_audit.rules.security import CorsWildcardCredentials, JwtUnverified
from keel_audit.source import Project

Make = Callable[[dict[str, str]], Project]

ROUTES = """\
from fastapi import APIRouter, FastAPI
from app.api import items_router

app = FastAPI()
router = APIRouter()

@router.api_route("/a", methods=["PATCH", "PUT"])
async def a(): ...

@router.api_route("/b")
async def b(): ...

@items_router.delete(path="/c")
async def c(): ...

async def d(): ...

app.add_api_route("/d", d, methods=["PATCH"])
app.add_api_route("/e", d)

@cache.get("/not-a-route")
def e(): ...
"""


def test_routes_from_decorators_api_route_and_add_api_route(make_project: Make) -> None:
    project = make_project({"app/main.py": ROUTES})
    found = sorted(
        (r.path or "", r.func.name, tuple(sorted(r.methods))) for r in iter_routes(project)
    )
    assert found == [
        ("/a", "a", ("patch", "put")),
        ("/b", "b", ("get",)),
        ("/c", "c", ("delete",)),
        ("/d", "d", ("patch",)),
        ("/e", "d", ("get",)),
    ]


def test_a_patch_registered_with_add_api_route_is_checked(make_project: Make) -> None:
    source = (
        "from fastapi import FastAPI\nfrom pydantic import BaseModel\n\napp = FastAPI()\n\n"
        "class Change(BaseModel):\n    name: str | None = None\n\n"
        "async def change(item_id: int, body: Change):\n"
        "    item = await load(item_id)\n    item.sqlmodel_update(body.model_dump())\n\n"
        "app.add_api_route('/items/{item_id}', change, methods=['PATCH'])\n"
    )
    (finding,) = PatchWithoutExcludeUnset().check(make_project({"app/main.py": source}))
    assert finding.location.line == 11


def test_settings_fields_with_field_defaults_and_plain_assignments(make_project: Make) -> None:
    source = (
        "from pydantic import Field\nfrom pydantic_settings import BaseSettings\n\n"
        "class Settings(BaseSettings):\n    origins: list[str] = Field(default=['*'])\n"
        "    hosts = ['a']\n    token: str = Field('x')\n"
    )
    project = make_project({"app/config.py": source})
    (origins,) = settings_default(project, "origins")
    assert literal(field_value(origins[1])) == ["*"]
    (hosts,) = settings_default(project, "hosts")
    assert literal(field_value(hosts[1])) == ["a"]
    (token,) = settings_default(project, "token")
    assert literal(field_value(token[1])) == "x"
    assert settings_default(project, "missing") == []


def test_cors_settings_field_with_field_default_is_followed(make_project: Make) -> None:
    files = {
        "app/config.py": "from pydantic import Field\n"
        "from pydantic_settings import BaseSettings\n\n"
        "class Settings(BaseSettings):\n    origins: list[str] = Field(default=['*'])\n"
        "    creds: bool = True\n\nsettings = Settings()\n",
        "app/main.py": "from fastapi import FastAPI\nfrom fastapi.middleware.cors import "
        "CORSMiddleware\nfrom app.config import settings\n\napp = FastAPI()\n"
        "app.add_middleware(CORSMiddleware, allow_origins=settings.origins, "
        "allow_credentials=settings.creds)\n",
    }
    assert len(list(CorsWildcardCredentials().check(make_project(files)))) == 1


def test_resolution_through_an_annotated_repository_parameter(make_project: Make) -> None:
    files = {
        "app/repo.py": "class Repo:\n    def save(self, item):\n        return item\n",
        "app/routes.py": "from typing import Annotated\nfrom fastapi import Depends\n"
        "from app.repo import Repo\n\n"
        "def handler(repo: Annotated[Repo, Depends()], other):\n"
        "    repo.save(1)\n    other.save(2)\n",
    }
    project = make_project(files)
    module = next(m for m in project.modules if m.path == "app/routes.py")
    handler = next(n for n in module.tree.body if isinstance(n, ast.FunctionDef))
    calls = [n for stmt in handler.body for n in ast.walk(stmt) if isinstance(n, ast.Call)]
    resolved = [resolve_function(project, module, call, handler) for call in calls]
    assert [r[1].name if r else None for r in resolved] == ["save", None]


def test_jwt_verify_false_and_kwargs_splat(make_project: Make) -> None:
    source = (
        "import jwt\n\ndef old(token, key):\n    return jwt.decode(token, key, verify=False)\n\n"
        "def splat(token, key, **opts):\n    return jwt.decode(token, key, **opts)\n"
    )
    found = [f.message for f in JwtUnverified().check(make_project({"app/auth.py": source}))]
    assert found == ["jwt.decode(...) verification disabled (verify_signature=False)"]


def test_routes_on_a_project_router_class(make_project: Make) -> None:
    source = (
        "from fastapi import Depends\nfrom app.routing import APIRouter\n\n"
        "router = APIRouter(prefix='/customers')\n\n"
        "@router.patch('/{id}')\nasync def update(id: int): ...\n"
    )
    routes = list(iter_routes(make_project({"app/customers.py": source})))
    assert [(r.path, sorted(r.methods)) for r in routes] == [("/{id}", ["patch"])]
