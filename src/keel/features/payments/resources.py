"""The payment gateway client as a lifespan resource, and the dependency that hands it out.

Opened once per process (the HTTP gateway holds a connection pool) and closed on shutdown;
it also tells the idempotency store how long a payment's key must stay claimed.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

from fastapi import Depends

from keel.core.config import settings_as
from keel.core.features import FeatureResources, ResourceContext
from keel.core.state import from_state
from keel.features.payments.gateway import PaymentGateway, build_gateway, claim_lease
from keel.features.payments.settings import PaymentsSettings

STATE_KEY = "payment_gateway"


@asynccontextmanager
async def gateway_resource(context: ResourceContext) -> AsyncIterator[FeatureResources]:
    gateway = build_gateway(settings_as(PaymentsSettings, context.settings), context.tracing)
    try:
        yield FeatureResources(state={STATE_KEY: gateway}, idempotency_lease=claim_lease(gateway))
    finally:
        await gateway.close()


Gateway = Annotated[PaymentGateway, Depends(from_state(STATE_KEY, PaymentGateway))]
