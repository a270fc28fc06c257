"""KA301-KA305: partial updates, uploads, unbounded lists, response models, middleware.

Every case is a small FastAPI project written for the test; positives say which evidence
the message must name, negatives are the look-alikes real projects contain."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from keel_audit.rules.api import (
    BaseHttpMiddleware,
    NoResponseModel,
    PatchWithoutExcludeUnset,
    UnboundedListEndpoint,
    UploadReadIntoMemory,
)
from keel_audit.rules.base import Rule
from keel_audit.source import Project

Make = Callable[[dict[str, str]], Project]

HEAD = """\
from fastapi import APIRouter, BackgroundTasks, Depends, FastAPI, File, UploadFile
from pydantic import BaseModel
from sqlalchemy import select, update

router = APIRouter()

class ItemUpdate(BaseModel):
    name: str | None = None
    price: int | None = None
"""


def run(make_project: Make, rule: type[Rule], files: dict[str, str]) -> list[str]:
    project = make_project(files)
    return [f"{f.location} {f.message}" for f in rule().check(project)]


# --- KA301 -----------------------------------------------------------------------------

PATCH_POSITIVES = {
    "setattr loop in the handler": (
        {
            "app/routes.py": HEAD
            + """
@router.patch("/items/{item_id}")
async def patch_item(item_id: int, body: ItemUpdate, session=Depends()):
    item = await session.get(Item, item_id)
    for key, value in body.model_dump().items():
        setattr(item, key, value)
    return item
"""
        },
        "app/routes.py:14",
    ),
    "through the service it calls, pydantic v1 .dict()": (
        {
            "app/routes.py": HEAD
            + """
from app import service

@router.patch("/items/{item_id}")
async def patch_item(item_id: int, item_in: ItemUpdate):
    return await service.update_item(item_id, item_in)
""",
            "app/service.py": """\
async def update_item(item_id, changes):
    item = await load(item_id)
    data = changes.dict()
    for field in data:
        setattr(item, field, data[field])
    return item
""",
        },
        "app/service.py:3",
    ),
    "values(**dump) in an UPDATE statement": (
        {
            "app/routes.py": HEAD
            + """
@router.patch("/items/{item_id}")
async def patch_item(item_id: int, body: ItemUpdate, session=Depends()):
    await session.execute(update(Item).where(Item.id == item_id).values(**body.model_dump()))
"""
        },
        "app/routes.py:13",
    ),
    "sqlmodel_update(dump) with the dump in a variable": (
        {
            "app/routes.py": HEAD
            + """
@router.patch("/items/{item_id}")
def patch_item(item_id: int, body: ItemUpdate, session=Depends()):
    item = session.get(Item, item_id)
    data = body.model_dump()
    item.sqlmodel_update(data)
    return item
"""
        },
        "app/routes.py:14",
    ),
    "dump handed to a repository that applies it": (
        {
            "app/routes.py": HEAD
            + """
from app.repo import Repository

@router.patch("/items/{item_id}")
async def patch_item(item_id: int, body: ItemUpdate, repo: Repository = Depends()):
    item = await repo.get(item_id)
    return await repo.apply(item, body.model_dump(by_alias=True))
""",
            "app/repo.py": """\
class Repository:
    async def apply(self, obj, update_dict):
        for attr, value in update_dict.items():
            setattr(obj, attr, value)
        return obj
""",
        },
        "app/routes.py:16",
    ),
}

PATCH_NEGATIVES = {
    "exclude_unset=True": HEAD
    + """
@router.patch("/items/{item_id}")
async def patch_item(item_id: int, body: ItemUpdate, session=Depends()):
    item = await session.get(Item, item_id)
    for key, value in body.model_dump(exclude_unset=True).items():
        setattr(item, key, value)
""",
    "a PUT replaces the whole object on purpose": HEAD
    + """
@router.put("/items/{item_id}")
async def put_item(item_id: int, body: ItemUpdate, session=Depends()):
    item = await session.get(Item, item_id)
    for key, value in body.model_dump().items():
        setattr(item, key, value)
""",
    "updating a dict field of the schema (Dispatch's event details)": HEAD
    + """
@router.patch("/items/{item_id}/event")
def patch_event(item_id: int, event_in: ItemUpdate, tasks: BackgroundTasks):
    event_in.details.update({"updated_by": "me"})
    tasks.add_task(store, event_in=event_in)
""",
    "exclude_none=True also drops what was not sent": HEAD
    + """
@router.patch("/items/{item_id}")
async def patch_item(item_id: int, body: ItemUpdate, session=Depends()):
    item = await session.get(Item, item_id)
    item.sqlmodel_update(body.model_dump(exclude_none=True))
""",
    "a dump spread into named parameters (the callee decides; realworld's `x or old`)": HEAD
    + """
@router.patch("/items/{item_id}")
async def patch_item(item_id: int, body: ItemUpdate, repo=Depends()):
    return await repo.update_item(item_id=item_id, **body.dict())
""",
    "the dump itself is extended, then used to build a new row": HEAD
    + """
@router.patch("/items/{item_id}/copy")
async def copy_item(item_id: int, body: ItemUpdate, session=Depends()):
    data = body.model_dump()
    data.update(source_id=item_id)
    session.add(Item(**data))
""",
}


@pytest.mark.parametrize("case", sorted(PATCH_POSITIVES))
def test_patch_without_exclude_unset_is_reported(make_project: Make, case: str) -> None:
    files, where = PATCH_POSITIVES[case]
    found = run(make_project, PatchWithoutExcludeUnset, files)
    assert len(found) == 1, found
    assert found[0].startswith(where), found
    assert "without exclude_unset=True" in found[0]


@pytest.mark.parametrize("case", sorted(PATCH_NEGATIVES))
def test_patch_look_alikes_are_not_reported(make_project: Make, case: str) -> None:
    assert (
        run(make_project, PatchWithoutExcludeUnset, {"app/routes.py": PATCH_NEGATIVES[case]}) == []
    )


def test_patch_chain_names_handler_service_and_dump(make_project: Make) -> None:
    files, _ = PATCH_POSITIVES["through the service it calls, pydantic v1 .dict()"]
    (finding,) = PatchWithoutExcludeUnset().check(make_project(files))
    labels = [f"{step.location.path}:{step.location.line} {step.label}" for step in finding.chain]
    assert labels == [
        "app/routes.py:14 PATCH handler patch_item",
        "app/routes.py:15 calls service.update_item",
        "app/service.py:3 changes.dict() (unset fields included)",
        "app/service.py:5 applied through a setattr loop",
    ]


# --- KA302 -----------------------------------------------------------------------------

UPLOAD_POSITIVES = {
    "await file.read()": """
@router.post("/upload")
async def upload(file: UploadFile):
    data = await file.read()
    return len(data)
""",
    "file.file.read() in a sync handler": """
@router.post("/upload")
def upload(file: UploadFile = File(...)):
    return store(file.file.read())
""",
    "every file of a list": """
@router.post("/uploads")
async def uploads(files: list[UploadFile]):
    for f in files:
        save(await f.read())
""",
    "a service that receives the UploadFile": """
async def store_avatar(user_id: int, avatar: UploadFile) -> None:
    blob = await avatar.read(-1)
    await put(user_id, blob)
""",
}
UPLOAD_NEGATIVES = {
    "read in chunks": """
@router.post("/upload")
async def upload(file: UploadFile):
    while chunk := await file.read(1024 * 1024):
        sink(chunk)
""",
    "size checked before reading": """
@router.post("/upload")
async def upload(file: UploadFile):
    if file.size is None or file.size > 5_000_000:
        raise TooLarge()
    return await file.read()
""",
    "streamed with copyfileobj": """
import shutil

@router.post("/upload")
def upload(file: UploadFile):
    with open("/tmp/x", "wb") as out:
        shutil.copyfileobj(file.file, out)
""",
    "reading something that is not the upload": """
@router.post("/upload")
async def upload(file: UploadFile, request=None):
    meta = await request.body()
    with open("manifest") as handle:
        return handle.read(), file.filename
""",
}


@pytest.mark.parametrize("case", sorted(UPLOAD_POSITIVES))
def test_upload_read_whole_is_reported(make_project: Make, case: str) -> None:
    found = run(make_project, UploadReadIntoMemory, {"app/up.py": HEAD + UPLOAD_POSITIVES[case]})
    assert len(found) == 1, found
    assert "reads the whole upload into memory" in found[0]


@pytest.mark.parametrize("case", sorted(UPLOAD_NEGATIVES))
def test_upload_look_alikes_are_not_reported(make_project: Make, case: str) -> None:
    assert (
        run(make_project, UploadReadIntoMemory, {"app/up.py": HEAD + UPLOAD_NEGATIVES[case]}) == []
    )


def test_upload_reads_in_tests_are_not_reported(make_project: Make) -> None:
    files = {"tests/test_up.py": HEAD + UPLOAD_POSITIVES["await file.read()"]}
    assert run(make_project, UploadReadIntoMemory, files) == []


# --- KA303 -----------------------------------------------------------------------------

LIST_POSITIVES = {
    "scalars().all() in the handler": """
@router.get("/items", response_model=list[ItemOut])
async def list_items(session=Depends()):
    result = await session.execute(select(Item))
    return result.scalars().all()
""",
    "through a repository function": """
from app.repo import all_items

@router.get("/items")
async def list_items(session=Depends()) -> list[ItemOut]:
    return await all_items(session)
""",
    "sync query().filter().all()": """
from typing import List

@router.get("/users/{user_id}/orders", response_model=List[OrderOut])
def orders(user_id: int, db=Depends()):
    return db.query(Order).filter(Order.user_id == user_id).all()
""",
}
LIST_NEGATIVES = {
    "limit and offset parameters": """
@router.get("/items", response_model=list[ItemOut])
async def list_items(limit: int = 50, offset: int = 0, session=Depends()):
    result = await session.execute(select(Item).limit(limit).offset(offset))
    return result.scalars().all()
""",
    "a fixed limit on the query": """
@router.get("/items/latest", response_model=list[ItemOut])
async def latest(session=Depends()):
    return (await session.scalars(select(Item).order_by(Item.id.desc()).limit(20))).all()
""",
    "bounded by the ids the client sent (Dispatch's in_)": """
@router.get("/items/by-ids", response_model=list[ItemOut])
def by_ids(ids: list[int], db=Depends()):
    return db.query(Item).filter(Item.id.in_(ids)).all()
""",
    "one object, not a list": """
@router.get("/items/{item_id}", response_model=ItemOut)
async def one(item_id: int, session=Depends()):
    return (await session.execute(select(Item).where(Item.id == item_id))).scalars().all()[0]
""",
    "LIMIT in the SQL text": """
from sqlalchemy import text

@router.get("/top", response_model=list[ItemOut])
async def top(session=Depends()):
    return (await session.execute(text("SELECT * FROM item ORDER BY price LIMIT 10"))).all()
""",
}
REPO = {
    "app/repo.py": """\
from sqlalchemy import select

async def all_items(session):
    return (await session.scalars(select(Item))).all()
"""
}


@pytest.mark.parametrize("case", sorted(LIST_POSITIVES))
def test_unbounded_list_is_reported(make_project: Make, case: str) -> None:
    found = run(
        make_project, UnboundedListEndpoint, {"app/routes.py": HEAD + LIST_POSITIVES[case], **REPO}
    )
    assert len(found) == 1, found
    assert "with no limit or pagination" in found[0]


def test_unbounded_list_points_at_the_repository_query(make_project: Make) -> None:
    files = {"app/routes.py": HEAD + LIST_POSITIVES["through a repository function"], **REPO}
    (finding,) = UnboundedListEndpoint().check(make_project(files))
    assert str(finding.location).startswith("app/repo.py:4")
    assert [s.label for s in finding.chain] == ["GET handler list_items", "calls all_items"]


@pytest.mark.parametrize("case", sorted(LIST_NEGATIVES))
def test_bounded_lists_are_not_reported(make_project: Make, case: str) -> None:
    assert (
        run(make_project, UnboundedListEndpoint, {"app/routes.py": HEAD + LIST_NEGATIVES[case]})
        == []
    )


# --- KA304 -----------------------------------------------------------------------------

RESPONSE_POSITIVES = {
    "an ORM row from session.get": """
@router.get("/items/{item_id}")
async def get_item(item_id: int, session=Depends()):
    return await session.get(Item, item_id)
""",
    "a dict built from the row": """
@router.get("/items/{item_id}/summary")
async def summary(item_id: int):
    item = await load(item_id)
    return {"id": item.id, "name": item.name}
""",
    "a list of rows, annotated only as dict": """
@router.get("/items")
async def items(session=Depends()) -> dict:
    return (await session.execute(select(Item))).scalars().all()
""",
}
RESPONSE_NEGATIVES = {
    "response_model declared": """
@router.get("/items/{item_id}", response_model=ItemOut)
async def get_item(item_id: int, session=Depends()):
    return await session.get(Item, item_id)
""",
    "a model return annotation": """
@router.get("/items/{item_id}")
async def get_item(item_id: int, session=Depends()) -> ItemOut:
    return await session.get(Item, item_id)
""",
    "a fixed acknowledgement": """
@router.get("/health")
async def health():
    return {"status": "ok"}
""",
    "204 with no body": """
@router.delete("/items/{item_id}", status_code=204)
async def delete(item_id: int, session=Depends()):
    return await session.get(Item, item_id)
""",
    "an explicit response object": """
from fastapi.responses import JSONResponse

@router.get("/raw")
async def raw(item_id: int):
    return JSONResponse({"id": item_id})
""",
}


@pytest.mark.parametrize("case", sorted(RESPONSE_POSITIVES))
def test_untyped_response_is_reported(make_project: Make, case: str) -> None:
    found = run(make_project, NoResponseModel, {"app/routes.py": HEAD + RESPONSE_POSITIVES[case]})
    assert len(found) == 1, found
    assert "has no response model and returns" in found[0]


@pytest.mark.parametrize("case", sorted(RESPONSE_NEGATIVES))
def test_typed_responses_are_not_reported(make_project: Make, case: str) -> None:
    assert (
        run(make_project, NoResponseModel, {"app/routes.py": HEAD + RESPONSE_NEGATIVES[case]}) == []
    )


def test_untyped_response_in_a_library_example_is_not_reported(make_project: Make) -> None:
    files = {"examples/app/app.py": HEAD + RESPONSE_POSITIVES["a dict built from the row"]}
    assert run(make_project, NoResponseModel, files) == []


# --- KA305 -----------------------------------------------------------------------------

MIDDLEWARE_POSITIVES = {
    "subclass": """
from starlette.middleware.base import BaseHTTPMiddleware

class Timing(BaseHTTPMiddleware):
    async def dispatch(self, request, call_next):
        return await call_next(request)
""",
    "decorator": """
from fastapi import FastAPI

app = FastAPI()

@app.middleware("http")
async def add_header(request, call_next):
    return await call_next(request)
""",
    "module alias": """
import starlette.middleware.base as base

class Audit(base.BaseHTTPMiddleware):
    pass
""",
}
MIDDLEWARE_NEGATIVES = {
    "pure ASGI middleware": """
class Timing:
    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        await self.app(scope, receive, send)
""",
    "a class of the project's own with the same name": """
class BaseHTTPMiddleware:
    pass

class Mine(BaseHTTPMiddleware):
    pass
""",
    "other decorators on the app": """
from fastapi import FastAPI

app = FastAPI()

@app.exception_handler(ValueError)
async def on_value_error(request, exc):
    return None
""",
}


@pytest.mark.parametrize("case", sorted(MIDDLEWARE_POSITIVES))
def test_base_http_middleware_is_reported(make_project: Make, case: str) -> None:
    found = run(make_project, BaseHttpMiddleware, {"app/mw.py": MIDDLEWARE_POSITIVES[case]})
    assert len(found) == 1, found
    assert "BaseHTTPMiddleware" in found[0]


@pytest.mark.parametrize("case", sorted(MIDDLEWARE_NEGATIVES))
def test_asgi_middleware_is_not_reported(make_project: Make, case: str) -> None:
    assert run(make_project, BaseHttpMiddleware, {"app/mw.py": MIDDLEWARE_NEGATIVES[case]}) == []


def test_middleware_in_tests_is_not_reported(make_project: Make) -> None:
    files = {"tests/test_mw.py": MIDDLEWARE_POSITIVES["subclass"]}
    assert run(make_project, BaseHttpMiddleware, files) == []
