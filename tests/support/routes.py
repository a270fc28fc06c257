"""Endpoints that exist only in tests, to drive the foundation's error paths end to end."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel
from sqlalchemy import text

from keel.core.dependencies import DbSession
from keel.core.errors import ConflictError

router = APIRouter(prefix="/_test")


class Echo(BaseModel):
    name: str
    count: int


@router.post("/echo")
async def echo(body: Echo) -> Echo:
    return body


@router.get("/db")
async def database_roundtrip(session: DbSession) -> dict[str, int]:
    value = (await session.execute(text("SELECT 1"))).scalar_one()
    return {"value": value}


@router.get("/boom")
async def boom() -> None:
    raise RuntimeError("secret detail: /srv/keel/app.py SELECT password FROM users")


@router.get("/conflict")
async def conflict() -> None:
    raise ConflictError("Already exists", details={"field": "sku"})


@router.get("/large")
async def large() -> dict[str, str]:
    return {"data": "x" * 5000}
