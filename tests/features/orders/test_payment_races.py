"""Races around one order's payment, through the real app on its own pool (real commits).

A loopback gateway answers slowly, so the requests really overlap: parallel payers with
different Idempotency-Keys, a cancel during a payment, a retry of a key still in flight.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import make_url, text

from keel.core.models import utcnow
from keel.main import create_app
from keel.settings import Settings
from tests.features.orders.support import DECLINED, ORDERS, card, pay, placed_order
from tests.features.payments.support import GatewayScript, running_gateway
from tests.support.accounts import Account, make_admin, signed_up
from tests.support.app import serve
from tests.support.assertions import assert_error_body
from tests.support.databases import POSTGRES_URL, opened
from tests.support.tcp_proxy import TcpProxy

SLOW_SECONDS = 1.0
PAST = utcnow() - timedelta(hours=1)


@dataclass
class Shop:
    http: httpx.AsyncClient
    settings: Settings
    script: GatewayScript
    admin: Account
    buyer: Account


@pytest.fixture
def slow_gateway() -> Iterator[tuple[str, GatewayScript]]:
    with running_gateway() as (url, script):
        script.delay_seconds = SLOW_SECONDS
        yield url, script


@pytest.fixture
async def shop(
    live_settings: Settings, slow_gateway: tuple[str, GatewayScript]
) -> AsyncIterator[Shop]:
    url, script = slow_gateway
    settings = live_settings.model_copy(
        update={"payment_gateway": "http", "payment_gateway_url": url, "db_pool_size": 12}
    )
    async with serve(create_app(settings)) as http:
        admin = await signed_up(http)
        async with opened(settings.database_url) as database, database.engine.begin() as conn:
            await make_admin(conn, admin)
        yield Shop(http, settings, script, admin, await signed_up(http))


async def order_of(shop: Shop) -> dict[str, Any]:
    return await placed_order(shop.http, shop.admin, shop.buyer)


async def test_parallel_pays_with_different_keys_charge_once(shop: Shop) -> None:
    order = await order_of(shop)
    payers = [shop.buyer, shop.admin] * 5  # the owner and an admin, each with its own keys
    responses = await asyncio.gather(
        *(pay(shop.http, who, order["id"], card(), f"k{n}") for n, who in enumerate(payers, 1))
    )
    statuses = sorted(r.status_code for r in responses)
    charges = len(shop.script.requests)
    assert charges == 1, f"{charges} charges reached the gateway for one order"
    assert statuses == [200] + [409] * 9, [r.text for r in responses]
    state = (await shop.http.get(f"{ORDERS}/{order['id']}", headers=shop.buyer.headers)).json()
    assert state["status"] == "paid"


async def charge_in_flight(shop: Shop, count: int = 1) -> None:
    """Wait until `count` charges have reached the (slow) gateway and are waiting there."""
    async with asyncio.timeout(10):
        # The gateway runs on another thread's event loop: poll what it has recorded.
        while len(shop.script.requests) < count:  # noqa: ASYNC110
            await asyncio.sleep(0.01)


async def set_on_orders(shop: Shop, sql: str, **values: Any) -> None:
    async with opened(shop.settings.database_url) as database, database.engine.begin() as conn:
        await conn.execute(text(sql), values)


async def test_cancel_during_a_payment_is_409_and_the_payment_wins(shop: Shop) -> None:
    order = await order_of(shop)
    paying = asyncio.create_task(pay(shop.http, shop.buyer, order["id"], card(), "pay-1"))
    await charge_in_flight(shop)
    cancel = await shop.http.post(f"{ORDERS}/{order['id']}/cancel", headers=shop.buyer.headers)
    error = assert_error_body(cancel, 409, "CONFLICT")
    assert error["details"] == {"status": "pending", "reason": "payment_in_progress"}
    paid = await paying
    assert paid.status_code == 200, paid.text
    assert paid.json()["status"] == "paid"
    assert shop.script.refunds == {}


async def charge_landing_after_a_cancel(shop: Shop, order: dict[str, Any]) -> dict[str, Any]:
    """The error body of a payment whose charge landed on an order cancelled meanwhile.

    The payer's claim runs out while it is still at the gateway (as after a stall longer
    than the lease): a cancel is allowed, and the charge then lands on a cancelled order.
    """
    paying = asyncio.create_task(pay(shop.http, shop.buyer, order["id"], card(), "late"))
    await charge_in_flight(shop)
    await set_on_orders(shop, "UPDATE orders SET payment_claimed_until = :past", past=PAST)
    cancel = await shop.http.post(f"{ORDERS}/{order['id']}/cancel", headers=shop.buyer.headers)
    assert cancel.status_code == 200, cancel.text
    return assert_error_body(await paying, 409, "CONFLICT")


async def test_a_charge_landing_after_a_cancel_is_refunded_and_recorded(shop: Shop) -> None:
    order = await order_of(shop)
    error = await charge_landing_after_a_cancel(shop, order)
    assert error["details"] == {"status": "cancelled", "reason": "order_cancelled"}
    assert "refunded" in error["message"]
    (charged,) = shop.script.charges.values()
    assert shop.script.refunded_charges == {charged}
    async with opened(shop.settings.database_url) as database, database.engine.connect() as c:
        query = text("SELECT transaction_id, amount, reason FROM refunds")
        refunds = (await c.execute(query)).all()
        payments = (await c.execute(text("SELECT count(*) FROM payments"))).scalar_one()
    assert [tuple(row) for row in refunds] == [(charged, 5000, "order_cancelled")]
    assert payments == 0
    state = (await shop.http.get(f"{ORDERS}/{order['id']}", headers=shop.buyer.headers)).json()
    assert state["status"] == "cancelled"
    assert state["payment"] is None


async def test_a_payer_continuing_an_expired_claim_gets_the_same_charge(shop: Shop) -> None:
    """The first payer stalls past its lease; another user (an admin, another key) pays on.

    Both charge under the order's attempt key, so the gateway makes one charge; whichever
    request records it first, neither refunds it.
    """
    order = await order_of(shop)
    first = asyncio.create_task(pay(shop.http, shop.buyer, order["id"], card(), "slow-1"))
    await charge_in_flight(shop)
    await set_on_orders(shop, "UPDATE orders SET payment_claimed_until = :past", past=PAST)
    second = await pay(shop.http, shop.admin, order["id"], card(), "slow-2")
    late = await first
    assert second.status_code == 200, second.text
    assert late.status_code == 200, late.text
    (charged,) = shop.script.charges.values()
    assert second.json()["payment"]["transaction_id"] == charged
    assert late.json()["payment"]["transaction_id"] == charged
    assert shop.script.refunds == {}


async def test_a_charge_of_an_attempt_the_order_moved_past_is_refunded(shop: Shop) -> None:
    """The first payer stalls past its lease; the next one continues its attempt, is declined
    (its request reached the gateway first), so the order moves on to a new attempt; then the
    first charge lands. It belongs to an attempt the order left: refunded and recorded."""
    order = await order_of(shop)
    first = asyncio.create_task(pay(shop.http, shop.buyer, order["id"], card(), "stalled"))
    await charge_in_flight(shop)
    shop.script.delay_seconds = 0
    await set_on_orders(shop, "UPDATE orders SET payment_claimed_until = :past", past=PAST)
    declined = await pay(shop.http, shop.admin, order["id"], card(DECLINED), "admin-key")
    assert_error_body(declined, 402, "PAYMENT_DECLINED")
    error = assert_error_body(await first, 409, "CONFLICT")
    assert error["details"] == {"status": "pending", "reason": "attempt_superseded"}
    (charged,) = shop.script.charges.values()
    assert shop.script.refunded_charges == {charged}
    paid = await pay(shop.http, shop.buyer, order["id"], card(), "next-attempt")
    assert paid.status_code == 200, paid.text
    assert paid.json()["payment"]["transaction_id"] != charged


async def lost_charge(shop: Shop, order: dict[str, Any], key: str) -> str:
    """A charge the gateway made whose answer never came back (502); its transaction id."""
    shop.script.delay_seconds = 0
    shop.script.lose_answers = True
    lost = await pay(shop.http, shop.buyer, order["id"], card(), key)
    assert_error_body(lost, 502, "BAD_GATEWAY")
    shop.script.lose_answers = False
    (charged,) = shop.script.charges.values()
    return charged


async def test_a_lost_charge_is_not_made_again_under_another_key(shop: Shop) -> None:
    order = await order_of(shop)
    charged = await lost_charge(shop, order, "first-key")
    busy = await pay(shop.http, shop.buyer, order["id"], card(), "second-key")
    error = assert_error_body(busy, 409, "CONFLICT")
    assert error["details"]["reason"] == "payment_in_progress"
    # The lease runs out (as when the holder crashed between the charge and recording it);
    # another user and key continue the same attempt and the gateway answers with its charge.
    await set_on_orders(shop, "UPDATE orders SET payment_claimed_until = :past", past=PAST)
    paid = await pay(shop.http, shop.admin, order["id"], card(), "admin-key")
    assert paid.status_code == 200, paid.text
    assert paid.json()["payment"]["transaction_id"] == charged
    assert list(shop.script.charges.values()) == [charged]


@pytest.mark.skipif(not POSTGRES_URL, reason="needs KEEL_TEST_DATABASE_URL (PostgreSQL)")
async def test_a_database_lost_after_the_charge_does_not_lead_to_a_second_charge(
    shop: Shop,
) -> None:
    """The claim is committed, the charge goes through, then the database goes away before
    the payment is recorded: the order must be paid with that charge later, not charged again.
    """
    target = make_url(shop.settings.database_url)
    proxy = TcpProxy(target.host or "127.0.0.1", target.port or 5432)
    await proxy.start()
    via_proxy = target.set(port=proxy.port).render_as_string(hide_password=False)
    settings = shop.settings.model_copy(
        update={"database_url": via_proxy, "db_connect_timeout_seconds": 1}
    )
    order = await order_of(shop)
    try:
        async with serve(create_app(settings)) as proxied:
            paying = asyncio.create_task(pay(proxied, shop.buyer, order["id"], card(), "k-db"))
            await charge_in_flight(shop)
            await proxy.stop()
            cut = await paying
    finally:
        await proxy.stop()
    assert cut.status_code in (500, 503), cut.text
    (charged,) = shop.script.charges.values()
    busy = await pay(shop.http, shop.admin, order["id"], card(), "admin-key")
    assert_error_body(busy, 409, "CONFLICT")  # the claim outlives the lost request ...
    await set_on_orders(shop, "UPDATE orders SET payment_claimed_until = :past", past=PAST)
    paid = await pay(shop.http, shop.admin, order["id"], card(), "admin-key")
    assert paid.status_code == 200, paid.text  # ... and then the charge made is recovered
    assert paid.json()["payment"]["transaction_id"] == charged
    assert list(shop.script.charges.values()) == [charged]


async def test_a_refusal_of_a_continued_attempt_keeps_the_order_claimed(shop: Shop) -> None:
    """The gateway refuses the continuation (a real one refuses a key reused with other
    parameters): that says nothing of the first charge, so the order must not be freed for a
    cancel or a new attempt, which could charge a second time."""
    order = await order_of(shop)
    await lost_charge(shop, order, "first-key")
    await set_on_orders(shop, "UPDATE orders SET payment_claimed_until = :past", past=PAST)
    shop.script.rejects = True
    refused = await pay(shop.http, shop.admin, order["id"], card(), "admin-key")
    assert_error_body(refused, 502, "BAD_GATEWAY")
    cancel = await shop.http.post(f"{ORDERS}/{order['id']}/cancel", headers=shop.buyer.headers)
    error = assert_error_body(cancel, 409, "CONFLICT")
    assert error["details"]["reason"] == "payment_in_progress"


async def test_one_key_on_two_orders_charges_each_order_for_itself(shop: Shop) -> None:
    first, second = await order_of(shop), await order_of(shop)
    charged = await lost_charge(shop, first, "shared-key")
    # The 502 released the key; used on another order it must not fetch the first's charge.
    paid = await pay(shop.http, shop.buyer, second["id"], card(), "shared-key")
    assert paid.status_code == 200, paid.text
    assert paid.json()["payment"]["transaction_id"] != charged
    assert len(shop.script.charges) == 2


async def test_a_retry_of_a_key_in_flight_is_409_at_once(shop: Shop) -> None:
    order = await order_of(shop)
    first = asyncio.create_task(pay(shop.http, shop.buyer, order["id"], card(), "busy-key"))
    await charge_in_flight(shop)
    started = time.monotonic()
    retry = await pay(shop.http, shop.buyer, order["id"], card(), "busy-key")
    elapsed = time.monotonic() - started
    error = assert_error_body(retry, 409, "CONFLICT")
    assert error["details"] == {"reason": "idempotency_key_in_use"}
    assert "in progress" in error["message"]
    assert elapsed < SLOW_SECONDS / 2, f"the retry waited {elapsed:.2f}s"
    assert (await first).status_code == 200
    assert len(shop.script.requests) == 1


async def test_a_key_refused_with_409_is_released(shop: Shop) -> None:
    """A payer turned away because another payment is in flight may retry the same key."""
    order = await order_of(shop)
    first = asyncio.create_task(pay(shop.http, shop.buyer, order["id"], card(DECLINED), "d-1"))
    await charge_in_flight(shop)
    refused = await pay(shop.http, shop.buyer, order["id"], card(), "second-key")
    assert_error_body(refused, 409, "CONFLICT")
    assert (await first).status_code == 402  # nothing charged: the order is free again
    retried = await pay(shop.http, shop.buyer, order["id"], card(), "second-key")
    assert retried.status_code == 200, retried.text
    assert "idempotent-replayed" not in retried.headers


async def test_a_late_charge_whose_refund_fails_is_recorded_for_an_operator(
    shop: Shop, caplog: pytest.LogCaptureFixture
) -> None:
    order = await order_of(shop)
    shop.script.refunds_fail = True
    error = await charge_landing_after_a_cancel(shop, order)
    assert "will be refunded" in error["message"]
    async with opened(shop.settings.database_url) as database, database.engine.connect() as c:
        query = text("SELECT transaction_id, refund_id FROM refunds")
        refunds = (await c.execute(query)).all()
    (charged,) = shop.script.charges.values()
    assert [tuple(row) for row in refunds] == [(charged, None)]
    assert "late_charge_refund_failed" in caplog.text
