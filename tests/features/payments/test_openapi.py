"""The card body documents the checks the payments feature enforces."""

from __future__ import annotations

from keel.main import create_app
from keel.settings import Settings
from tests.support.openapi import component


def test_card_fields_carry_the_patterns_the_server_enforces(settings: Settings) -> None:
    card = component(create_app(settings).openapi(), "Card")["properties"]
    assert card["number"]["pattern"] == r"^[0-9](?: ?[0-9]){12,18}$"
    assert card["cvc"]["pattern"] == r"^[0-9]{3,4}$"
    assert card["holder"]["minLength"] == 1


def test_paying_is_an_operation_of_the_orders_tag(settings: Settings) -> None:
    document = create_app(settings).openapi()
    operation = document["paths"]["/api/v1/orders/{order_id}/pay"]["post"]
    assert operation["operationId"] == "orders-pay-order"
    assert "idempotency-key" in {p["name"].lower() for p in operation["parameters"]}
