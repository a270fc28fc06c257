"""The gateway clients on their own: refunds, and the bound on a whole charge."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from keel.features.payments.gateway import (
    CardDetails,
    ChargeRequest,
    GatewayRejectedError,
    GatewayUnavailableError,
    HttpGateway,
    RefundRequest,
    SandboxGateway,
    claim_lease,
)
from tests.features.payments.support import GatewayScript, running_gateway

CARD = CardDetails(number="4242424242424242", exp_month=12, exp_year=2099, cvc="123", holder="A")


def charge_request(key: str) -> ChargeRequest:
    return ChargeRequest(amount=500, currency="EUR", card=CARD, reference="o1", idempotency_key=key)


def refund_request(transaction_id: str, key: str) -> RefundRequest:
    return RefundRequest(
        transaction_id=transaction_id, amount=500, currency="EUR", idempotency_key=key
    )


@pytest.fixture
def gateway_server() -> Iterator[tuple[str, GatewayScript]]:
    with running_gateway() as server:
        yield server


async def test_sandbox_refunds_are_idempotent_per_key() -> None:
    gateway = SandboxGateway()
    charge = await gateway.charge(charge_request("k"))
    first = await gateway.refund(refund_request(charge.transaction_id, "refund:k"))
    again = await gateway.refund(refund_request(charge.transaction_id, "refund:k"))
    other = await gateway.refund(refund_request(charge.transaction_id, "refund:other"))
    assert first == again
    assert other != first


async def test_http_refund_retries_and_sends_its_key(
    gateway_server: tuple[str, GatewayScript],
) -> None:
    url, script = gateway_server
    gateway = HttpGateway(url, api_key=None, timeout_seconds=2)
    try:
        charge = await gateway.charge(charge_request("k"))
        receipt = await gateway.refund(refund_request(charge.transaction_id, "refund:k"))
        with pytest.raises(GatewayRejectedError):  # the gateway knows no such charge
            await gateway.refund(refund_request("gw_unknown", "refund:x"))
        script.refunds_fail = True
        with pytest.raises(GatewayUnavailableError):
            await gateway.refund(refund_request(charge.transaction_id, "refund:k2"))
    finally:
        await gateway.close()
    assert receipt.refund_id.startswith("re_")
    assert script.refunds == {"refund:k": charge.transaction_id}


async def test_a_whole_http_charge_is_bounded_by_the_budget(
    gateway_server: tuple[str, GatewayScript],
) -> None:
    url, script = gateway_server
    script.delay_seconds = 2
    gateway = HttpGateway(url, api_key=None, timeout_seconds=0.3)
    started = time.monotonic()
    try:
        with pytest.raises(GatewayUnavailableError):
            await gateway.charge(charge_request("slow"))
    finally:
        await gateway.close()
    assert time.monotonic() - started <= gateway.budget_seconds + 0.5
    assert claim_lease(gateway).total_seconds() > gateway.budget_seconds
