"""A small payment gateway served on loopback, for testing Keel's `http` gateway for real."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from tests.support.servers import uvicorn_server


@dataclass
class GatewayScript:
    """What the fake gateway does; tests change it between calls."""

    failures_before_success: int = 0  # answer 500 this many times first
    always_fail: bool = False
    delay_seconds: float = 0.0  # a slow gateway: each charge answers this late
    garbled: bool = False  # answer 200 with a body that is not JSON
    refunds_fail: bool = False  # answer 500 to every refund
    rejects: bool = False  # answer 400 to every charge (a request the gateway refuses)
    lose_answers: bool = False  # charge, then answer 500 (the answer is lost on the way)
    charges: dict[str, str] = field(default_factory=dict)  # idempotency key -> transaction id
    requests: list[dict[str, Any]] = field(default_factory=list)  # every charge request
    refunds: dict[str, str] = field(default_factory=dict)  # idempotency key -> charge refunded

    @property
    def refunded_charges(self) -> set[str]:
        return set(self.refunds.values())


def gateway_app(script: GatewayScript) -> Starlette:
    async def charges(request: Request) -> Response:
        body = await request.json()
        key = request.headers.get("idempotency-key", "")
        script.requests.append({"key": key, "body": body})
        if script.always_fail or script.failures_before_success > 0:
            script.failures_before_success -= 1
            return JSONResponse({"error": "boom"}, status_code=500)
        if script.rejects:
            return JSONResponse({"error": "idempotency key reused"}, status_code=400)
        if script.delay_seconds:
            await asyncio.sleep(script.delay_seconds)
        if script.garbled:
            return PlainTextResponse("<html>proxy error</html>")
        if body["card"]["number"] == "4000000000000002":
            return JSONResponse({"status": "declined", "reason": "card_declined"}, status_code=402)
        transaction = script.charges.setdefault(key, f"gw_{uuid.uuid4().hex}")
        if script.lose_answers:
            return JSONResponse({"error": "lost"}, status_code=500)
        return JSONResponse({"id": transaction, "status": "succeeded"})

    async def refunds(request: Request) -> JSONResponse:
        body = await request.json()
        key = request.headers.get("idempotency-key", "")
        if script.refunds_fail:
            return JSONResponse({"error": "boom"}, status_code=500)
        if body["charge"] not in script.charges.values():
            return JSONResponse({"error": "no such charge"}, status_code=404)
        script.refunds.setdefault(key, body["charge"])
        return JSONResponse({"id": f"re_{uuid.uuid5(uuid.NAMESPACE_URL, key).hex}"})

    return Starlette(
        routes=[
            Route("/charges", charges, methods=["POST"]),
            Route("/refunds", refunds, methods=["POST"]),
        ]
    )


@contextmanager
def running_gateway() -> Iterator[tuple[str, GatewayScript]]:
    script = GatewayScript()
    with uvicorn_server(gateway_app(script), name="test-gateway") as url:
        yield url, script
