"""The baseline: Keel's `/health` answer with nothing around it.

The handler mirrors Keel's own (an async route returning a pydantic model that serialises to
`{"status": "ok"}`), so the difference between the two servers is Keel's middleware stack,
exception handlers and app wiring, not the cost of the route itself. Deliberately no
middleware, no lifespan, no settings.
"""

from __future__ import annotations

from fastapi import FastAPI
from pydantic import BaseModel


class Health(BaseModel):
    status: str = "ok"


app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)


@app.get("/health", response_model=Health)
async def health() -> Health:
    return Health()
