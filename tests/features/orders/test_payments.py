"""Paying orders: card checks, sandbox and HTTP gateways, declines, timeouts, idempotency."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import insert, text
from sqlalchemy.ext.asyncio import AsyncConnection

from keel.core.idempotency import IdempotencyKey
from keel.core.models import utcnow
from keel.main import create_app
from keel.settings import Settings
from tests.conftest import MakeSettings
from tests.features.orders.support import (
    DECLINED,
    INSUFFICIENT,
    ORDERS,
    TIMEOUT,
    card,
    pay,
    placed_order,
)
from tests.features.payments.support import GatewayScript, running_gateway
from tests.support.accounts import Account, make_admin, signed_up
from tests.support.app import isolated_app, serve
from tests.support.assertions import assert_error_body
from tests.support.databases import POSTGRES_URL, opened
from tests.support.routes import RECEIVED_EVENTS


@pytest.fixture
async def buyer(client: httpx.AsyncClient) -> Account:
    return await signed_up(client)


@pytest.fixture
async def order(client: httpx.AsyncClient, admin: Account, buyer: Account) -> dict[str, Any]:
    return await placed_order(client, admin, buyer)


async def test_successful_payment_records_brand_and_last4_only(
    client: httpx.AsyncClient, buyer: Account, order: dict[str, Any], db_connection: AsyncConnection
) -> None:
    events_key = uuid.uuid4().hex
    await client.post(f"/_test/events/{events_key}")
    response = await pay(client, buyer, order["id"], card(), "key-1")
    assert response.status_code == 200, response.text
    paid = response.json()
    assert paid["status"] == "paid"
    payment = paid["payment"]
    assert payment["last4"] == "4242"
    assert payment["brand"] == "visa"
    assert payment["transaction_id"].startswith("sb_")
    read_back = await client.get(f"{ORDERS}/{order['id']}", headers=buyer.headers)
    assert read_back.json()["payment"] == payment
    assert [e.type for e in RECEIVED_EVENTS[events_key]] == ["order.paid"]
    stored = (
        await db_connection.execute(text("SELECT amount, currency, last4 FROM payments"))
    ).all()
    assert [tuple(row) for row in stored] == [(5000, "EUR", "4242")]


async def test_card_number_and_cvc_are_never_stored_or_logged(
    client: httpx.AsyncClient,
    buyer: Account,
    order: dict[str, Any],
    db_connection: AsyncConnection,
    caplog: pytest.LogCaptureFixture,
) -> None:
    await pay(client, buyer, order["id"], card(cvc="9871"), "key-secrets")
    await pay(client, buyer, order["id"], card(INSUFFICIENT, cvc="9871"), "key-secrets-2")
    dump = []
    for table in ("payments", "idempotency_keys", "orders", "order_items"):
        rows = (await db_connection.execute(text(f"SELECT * FROM {table}"))).all()  # noqa: S608
        dump.append(repr(rows))
    everything = "\n".join(dump) + "\n".join(r.getMessage() for r in caplog.records)
    everything += repr([r.msg for r in caplog.records])
    for secret in ("4242424242424242", "4242 4242 4242 4242", "4000000000009995", "9871"):
        assert secret not in everything


async def test_decline_is_402_with_reason_and_order_stays_pending(
    client: httpx.AsyncClient, buyer: Account, order: dict[str, Any]
) -> None:
    for number, reason in ((INSUFFICIENT, "insufficient_funds"), (DECLINED, "card_declined")):
        response = await pay(client, buyer, order["id"], card(number), f"decline-{reason}")
        error = assert_error_body(response, 402, "PAYMENT_DECLINED")
        assert error["details"] == {"reason": reason}
    current = await client.get(f"{ORDERS}/{order['id']}", headers=buyer.headers)
    assert current.json()["status"] == "pending"
    assert current.json()["payment"] is None


async def test_gateway_timeout_is_502_and_paying_again_is_safe(
    client: httpx.AsyncClient, buyer: Account, order: dict[str, Any], db_connection: AsyncConnection
) -> None:
    timed_out = await pay(client, buyer, order["id"], card(TIMEOUT), "retry-key")
    assert_error_body(timed_out, 502, "BAD_GATEWAY")
    assert (await client.get(f"{ORDERS}/{order['id']}", headers=buyer.headers)).json()[
        "status"
    ] == "pending"
    retried = await pay(client, buyer, order["id"], card(TIMEOUT), "retry-key")
    assert_error_body(retried, 502, "BAD_GATEWAY")  # the key was released: it ran again
    # Whether a timed-out charge went through is unknown: the order stays claimed for that
    # key (which the gateway deduplicates) until the claim expires; then anyone may pay.
    other = await pay(client, buyer, order["id"], card(), "another-key")
    error = assert_error_body(other, 409, "CONFLICT")
    assert error["details"] == {"status": "pending", "reason": "payment_in_progress"}
    await db_connection.execute(
        text("UPDATE orders SET payment_claimed_until = :past"),
        {"past": utcnow() - timedelta(seconds=1)},
    )
    paid = await pay(client, buyer, order["id"], card(), "another-key")
    assert paid.status_code == 200, paid.text


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"number": "4242 4242 4242 424x"}, "number"),
        ({"number": "4242 4242"}, "number"),
        ({"number": "٤٢٤٢٤٢٤٢٤٢٤٢٤٢٤٢"}, "number"),  # digits, but not ASCII ones
        ({"number": "4242  4242 4242 4242"}, "number"),  # the pattern: single spaces
        ({"number": "4" * 20}, "number"),
        ({"exp_month": 13}, "exp_month"),
        ({"exp_year": 1999}, "exp_year"),
        ({"cvc": "12"}, "cvc"),
        ({"cvc": "12a"}, "cvc"),
        ({"holder": ""}, "holder"),
    ],
)
async def test_card_checks_name_the_bad_field(
    client: httpx.AsyncClient,
    buyer: Account,
    order: dict[str, Any],
    overrides: dict[str, Any],
    field: str,
) -> None:
    body = card(**overrides)
    response = await pay(client, buyer, order["id"], body, f"bad-{field}-{uuid.uuid4().hex}")
    error = assert_error_body(response, 422, "VALIDATION_ERROR")
    assert error["details"]["errors"][0]["loc"] == ["body", "card", field]  # type: ignore[index]
    assert "4242" not in response.text  # the input is not echoed back


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"number": "4242 4242 4242 4241"}, "incorrect_number"),
        ({"exp_month": 1, "exp_year": 2020}, "expired_card"),
    ],
)
async def test_cards_no_network_accepts_are_declined(
    client: httpx.AsyncClient,
    buyer: Account,
    order: dict[str, Any],
    overrides: dict[str, Any],
    reason: str,
) -> None:
    """Well-formed (the schema's patterns hold) but refused as a card network would: 402."""
    response = await pay(client, buyer, order["id"], card(**overrides), f"k-{uuid.uuid4().hex}")
    error = assert_error_body(response, 402, "PAYMENT_DECLINED")
    assert error["details"] == {"reason": reason}
    assert "4242" not in response.text
    again = await client.get(f"{ORDERS}/{order['id']}", headers=buyer.headers)
    assert again.json()["status"] == "pending"


async def test_idempotency_key_is_required(
    client: httpx.AsyncClient, buyer: Account, order: dict[str, Any]
) -> None:
    response = await client.post(f"{ORDERS}/{order['id']}/pay", json=card(), headers=buyer.headers)
    error = assert_error_body(response, 422, "VALIDATION_ERROR")
    assert error["details"]["errors"][0]["loc"] == ["header", "idempotency-key"]  # type: ignore[index]


async def test_same_key_same_body_replays_without_charging_again(
    client: httpx.AsyncClient, buyer: Account, order: dict[str, Any]
) -> None:
    first = await pay(client, buyer, order["id"], card(), "replay-key")
    second = await pay(client, buyer, order["id"], card(), "replay-key")
    assert first.status_code == second.status_code == 200
    assert second.json() == first.json()


async def test_declines_are_replayed_too(
    client: httpx.AsyncClient, buyer: Account, order: dict[str, Any]
) -> None:
    first = await pay(client, buyer, order["id"], card(DECLINED), "declined-key")
    second = await pay(client, buyer, order["id"], card(DECLINED), "declined-key")
    assert first.status_code == second.status_code == 402
    assert second.json() == first.json()


async def test_same_key_different_body_is_422(
    client: httpx.AsyncClient, buyer: Account, order: dict[str, Any]
) -> None:
    await pay(client, buyer, order["id"], card(), "mismatch-key")
    other = await pay(client, buyer, order["id"], card(holder="Someone Else"), "mismatch-key")
    error = assert_error_body(other, 422, "VALIDATION_ERROR")
    assert error["details"]["errors"][0]["loc"] == ["header", "idempotency-key"]  # type: ignore[index]


async def test_keys_are_scoped_per_user(
    client: httpx.AsyncClient, admin: Account, buyer: Account, order: dict[str, Any]
) -> None:
    other_buyer = await signed_up(client)
    other_order = await placed_order(client, admin, other_buyer)
    first = await pay(client, buyer, order["id"], card(), "shared-key")
    second = await pay(client, other_buyer, other_order["id"], card(), "shared-key")
    assert first.status_code == second.status_code == 200
    assert first.json()["id"] != second.json()["id"]


async def test_only_pending_orders_of_your_own_can_be_paid(
    client: httpx.AsyncClient, admin: Account, buyer: Account, order: dict[str, Any]
) -> None:
    stranger = await signed_up(client)
    assert_error_body(await pay(client, stranger, order["id"], card(), "k1"), 404, "NOT_FOUND")
    await client.post(f"{ORDERS}/{order['id']}/cancel", headers=buyer.headers)
    error = assert_error_body(await pay(client, buyer, order["id"], card(), "k2"), 409, "CONFLICT")
    assert error["details"] == {"status": "cancelled"}
    paid_order = await placed_order(client, admin, buyer)
    await pay(client, buyer, paid_order["id"], card(), "k3")
    assert_error_body(await pay(client, buyer, paid_order["id"], card(), "k4"), 409, "CONFLICT")
    assert_error_body(
        await client.post(f"{ORDERS}/{paid_order['id']}/cancel", headers=buyer.headers),
        409,
        "CONFLICT",
    )


@pytest.fixture
def http_gateway() -> Iterator[tuple[str, GatewayScript]]:
    with running_gateway() as gateway:
        yield gateway


def with_gateway(make_settings: MakeSettings, url: str) -> Settings:
    return make_settings(
        payment_gateway="http", payment_gateway_url=url, payment_gateway_timeout_seconds=2
    )


async def test_http_gateway_charges_with_the_idempotency_key(
    make_settings: MakeSettings,
    db_connection: AsyncConnection,
    http_gateway: tuple[str, GatewayScript],
) -> None:
    url, script = http_gateway
    async with serve(isolated_app(with_gateway(make_settings, url), db_connection)) as http:
        admin = await signed_up(http)
        await make_admin(db_connection, admin)
        buyer = await signed_up(http)
        order = await placed_order(http, admin, buyer)
        script.failures_before_success = 2  # two 500s, then success: retried safely
        paid = await pay(http, buyer, order["id"], card(), "http-key")
        declined_order = await placed_order(http, admin, buyer)
        declined = await pay(http, buyer, declined_order["id"], card(DECLINED), "http-decline")
        good = await pay(http, buyer, declined_order["id"], card(), "http-after-decline")
    assert paid.status_code == 200, paid.text
    assert paid.json()["payment"]["transaction_id"].startswith("gw_")
    keys = {request["key"] for request in script.requests[:3]}
    # The order's key, the same on every retry (and for any payer of this attempt) ...
    assert keys == {f"order:{order['id']}:0"}
    assert script.requests[0]["body"]["amount"] == 5000
    assert_error_body(declined, 402, "PAYMENT_DECLINED")
    # ... and a new one after a decline: a gateway would replay the decline for the old one.
    assert good.status_code == 200, good.text
    assert [request["key"] for request in script.requests[3:]] == [
        f"order:{declined_order['id']}:0",
        f"order:{declined_order['id']}:1",
    ]
    assert len(script.charges) == 2


async def test_http_gateway_failing_is_502_and_nothing_charged(
    make_settings: MakeSettings,
    db_connection: AsyncConnection,
    http_gateway: tuple[str, GatewayScript],
) -> None:
    url, script = http_gateway
    script.always_fail = True
    async with serve(isolated_app(with_gateway(make_settings, url), db_connection)) as http:
        admin = await signed_up(http)
        await make_admin(db_connection, admin)
        buyer = await signed_up(http)
        order = await placed_order(http, admin, buyer)
        response = await pay(http, buyer, order["id"], card(), "down-key")
        state = (await http.get(f"{ORDERS}/{order['id']}", headers=buyer.headers)).json()
    assert_error_body(response, 502, "BAD_GATEWAY")
    assert state["status"] == "pending"
    assert len(script.requests) == 3  # retried, then gave up
    assert script.charges == {}


async def test_unreachable_http_gateway_is_502(
    make_settings: MakeSettings, db_connection: AsyncConnection
) -> None:
    from tests.support.network import closed_port

    settings = with_gateway(make_settings, f"http://127.0.0.1:{closed_port()}")
    async with serve(isolated_app(settings, db_connection)) as http:
        admin = await signed_up(http)
        await make_admin(db_connection, admin)
        buyer = await signed_up(http)
        order = await placed_order(http, admin, buyer)
        response = await pay(http, buyer, order["id"], card(), "unreachable")
    assert_error_body(response, 502, "BAD_GATEWAY")


@pytest.mark.skipif(not POSTGRES_URL, reason="needs KEEL_TEST_DATABASE_URL (PostgreSQL)")
async def test_parallel_double_pay_with_one_key_charges_once(
    live_settings: Settings, http_gateway: tuple[str, GatewayScript]
) -> None:
    url, script = http_gateway
    script.delay_seconds = 0.5  # all five overlap the first one's charge
    settings = live_settings.model_copy(
        update={"payment_gateway": "http", "payment_gateway_url": url}
    )
    async with serve(create_app(settings)) as http:
        admin = await signed_up(http)
        async with opened(settings.database_url) as database, database.engine.begin() as conn:
            await make_admin(conn, admin)
        buyer = await signed_up(http)
        order = await placed_order(http, admin, buyer)
        responses = await asyncio.gather(
            *(pay(http, buyer, order["id"], card(), "parallel-key") for _ in range(5))
        )
        replay = await pay(http, buyer, order["id"], card(), "parallel-key")
    # The key is in flight for four of them: 409 at once (they do not wait for the answer).
    assert sorted(r.status_code for r in responses) == [200, 409, 409, 409, 409]
    assert {r.json()["error"]["details"]["reason"] for r in responses if r.status_code == 409} == {
        "idempotency_key_in_use"
    }
    assert len(script.requests) == 1, "exactly one charge reached the gateway"
    (paid,) = (r for r in responses if r.status_code == 200)
    assert replay.status_code == 200
    assert replay.json() == paid.json()
    assert replay.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in paid.headers


async def test_keys_expire(
    client: httpx.AsyncClient, buyer: Account, order: dict[str, Any], db_connection: AsyncConnection
) -> None:
    first = await pay(client, buyer, order["id"], card(DECLINED), "old-key")
    assert first.status_code == 402
    await db_connection.execute(
        text("UPDATE idempotency_keys SET expires_at = :past"),
        {"past": utcnow() - timedelta(seconds=1)},
    )
    # Past its lifetime the key is free again: a different body is accepted and runs.
    reused = await pay(client, buyer, order["id"], card(), "old-key")
    assert reused.status_code == 200


async def hold_key(
    connection: AsyncConnection, owner: Account, key: str, *, locked_for: timedelta
) -> None:
    """An in-flight key as a request that is still running, or has died, leaves it."""
    now = utcnow()
    await connection.execute(
        insert(IdempotencyKey).values(
            id=uuid.uuid4(),
            owner_id=uuid.UUID(owner.id),
            key=key,
            fingerprint="0" * 64,
            state="in_progress",
            created_at=now,
            expires_at=now + timedelta(hours=24),
            holder=uuid.uuid4(),
            locked_until=now + locked_for,
        )
    )


async def test_a_key_whose_holder_died_is_usable_after_its_lease(
    client: httpx.AsyncClient, buyer: Account, order: dict[str, Any], db_connection: AsyncConnection
) -> None:
    await hold_key(db_connection, buyer, "orphan-key", locked_for=-timedelta(seconds=1))
    paid = await pay(client, buyer, order["id"], card(), "orphan-key")
    assert paid.status_code == 200, paid.text
    replay = await pay(client, buyer, order["id"], card(), "orphan-key")
    assert replay.json() == paid.json()


async def test_a_key_held_by_a_live_request_is_409_at_once(
    client: httpx.AsyncClient, buyer: Account, order: dict[str, Any], db_connection: AsyncConnection
) -> None:
    await hold_key(db_connection, buyer, "busy-key", locked_for=timedelta(minutes=1))
    started = time.monotonic()
    busy = await pay(client, buyer, order["id"], card(), "busy-key")
    assert time.monotonic() - started < 2
    error = assert_error_body(busy, 409, "CONFLICT")
    assert error["details"] == {"reason": "idempotency_key_in_use"}


async def test_an_unreadable_gateway_answer_is_502_and_a_retry_charges_once(
    make_settings: MakeSettings,
    db_connection: AsyncConnection,
    http_gateway: tuple[str, GatewayScript],
) -> None:
    """A 200 that is not JSON (a proxy's error page) was an unexpected exception, a 500."""
    url, script = http_gateway
    app = isolated_app(with_gateway(make_settings, url), db_connection)
    async with serve(app, raise_app_exceptions=False) as http:
        admin = await signed_up(http)
        await make_admin(db_connection, admin)
        buyer = await signed_up(http)
        order = await placed_order(http, admin, buyer)
        script.garbled = True
        broken = await pay(http, buyer, order["id"], card(), "crash-key")
        script.garbled = False
        retried = await pay(http, buyer, order["id"], card(), "crash-key")
    assert_error_body(broken, 502, "BAD_GATEWAY")
    assert retried.status_code == 200, retried.text  # ran again, not stuck in progress
    assert len(script.charges) == 1  # the same gateway key both times: one charge


async def test_an_error_replay_is_marked_and_keeps_the_first_request_id(
    client: httpx.AsyncClient, buyer: Account, order: dict[str, Any]
) -> None:
    first = await pay(client, buyer, order["id"], card(DECLINED), "marked-key")
    second = await pay(client, buyer, order["id"], card(DECLINED), "marked-key")
    assert "idempotent-replayed" not in first.headers
    assert second.headers["idempotent-replayed"] == "true"
    assert second.json()["error"]["request_id"] == first.headers["x-request-id"]
    assert second.headers["x-request-id"] != first.headers["x-request-id"]


async def test_a_key_claimed_before_leases_existed_expires_after_one_lease(
    client: httpx.AsyncClient, buyer: Account, order: dict[str, Any], db_connection: AsyncConnection
) -> None:
    await hold_key(db_connection, buyer, "legacy-key", locked_for=timedelta(minutes=1))
    await db_connection.execute(
        text("UPDATE idempotency_keys SET locked_until = NULL, holder = NULL, created_at = :old"),
        {"old": utcnow() - timedelta(hours=1)},
    )
    paid = await pay(client, buyer, order["id"], card(), "legacy-key")
    assert paid.status_code == 200, paid.text


HOSTILE_CARDS = {
    "month beyond 64 bits": card(exp_month=2**63),
    "year beyond 64 bits": card(exp_year=2**63),
    "negative month beyond 64 bits": card(exp_month=-(2**63) - 1),
    "NUL in the number": card(number="4242\x004242 4242 4242"),
    "NUL in the CVC": card(cvc="1\x003"),
    "long number": card(number="4" * 100_000),
    "card is a string": {"card": "4242"},
    "nested deep": {"card": {"number": [[[[[[[[[[[]]]]]]]]]]]}},
}


@pytest.mark.parametrize("body", HOSTILE_CARDS.values(), ids=HOSTILE_CARDS.keys())
async def test_hostile_pay_bodies_are_422_and_charge_nothing(
    client: httpx.AsyncClient, buyer: Account, order: dict[str, Any], body: dict[str, Any]
) -> None:
    response = await pay(client, buyer, order["id"], body, f"hostile-{uuid.uuid4()}")
    assert_error_body(response, 422, "VALIDATION_ERROR")
    state = await client.get(f"{ORDERS}/{order['id']}", headers=buyer.headers)
    assert state.json()["status"] == "pending"


async def test_an_integer_of_5000_digits_in_the_pay_body_is_400(
    client: httpx.AsyncClient, buyer: Account, order: dict[str, Any]
) -> None:
    raw = b'{"card": {"number": "4242424242424242", "exp_month": 12, "exp_year": '
    raw += b"9" * 5000 + b', "cvc": "123", "holder": "Ada"}}'
    headers = {**buyer.headers, "Idempotency-Key": "digits", "Content-Type": "application/json"}
    response = await client.post(f"{ORDERS}/{order['id']}/pay", content=raw, headers=headers)
    assert_error_body(response, 400, "BAD_REQUEST")  # not JSON Python will read


HOSTILE_KEYS = {
    "NUL": "a\x00b",
    "256 characters": "k" * 256,
    "control characters": "a\x01\x02b",
    "Latin-1 bytes": "clé-é",
}


@pytest.mark.parametrize("key", HOSTILE_KEYS.values(), ids=HOSTILE_KEYS.keys())
async def test_idempotency_keys_other_than_printable_ascii_are_422(
    client: httpx.AsyncClient, buyer: Account, order: dict[str, Any], key: str
) -> None:
    """A NUL byte reached PostgreSQL (500); keys are printable ASCII, as HTTP headers are."""
    headers = [*buyer.headers.items(), ("Idempotency-Key", key.encode("latin-1"))]
    response = await client.post(f"{ORDERS}/{order['id']}/pay", json=card(), headers=headers)
    error = assert_error_body(response, 422, "VALIDATION_ERROR")
    assert error["details"]["errors"][0]["loc"] == ["header", "idempotency-key"]


async def test_a_huge_pay_body_is_413(
    client: httpx.AsyncClient, buyer: Account, order: dict[str, Any]
) -> None:
    body = card(holder="A" * 5_000_000)
    response = await pay(client, buyer, order["id"], body, "huge")
    assert_error_body(response, 413, "PAYLOAD_TOO_LARGE")
