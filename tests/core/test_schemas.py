"""`nest_columns`: a row's flat columns become the nested field a response schema reads."""

from __future__ import annotations

from types import SimpleNamespace

from keel.core.schemas import nest_columns

FIELDS = ("id", "price", "name")


def test_a_row_s_columns_are_gathered_and_its_other_fields_copied() -> None:
    row = SimpleNamespace(id=7, name="Lamp", price_amount=1999, currency="EUR", extra="no")
    assert nest_columns(row, FIELDS, "price", amount="price_amount", currency="currency") == {
        "id": 7,
        "name": "Lamp",
        "price": {"amount": 1999, "currency": "EUR"},
    }


def test_what_is_not_such_a_row_passes_unchanged() -> None:
    cached = {"id": 7, "name": "Lamp", "price": {"amount": 1999, "currency": "EUR"}}
    assert nest_columns(cached, FIELDS, "price", amount="price_amount") is cached
    partial = SimpleNamespace(id=7, name="Lamp", price_amount=1999)  # no `currency` column
    assert (
        nest_columns(partial, FIELDS, "price", amount="price_amount", currency="currency")
        is partial
    )
