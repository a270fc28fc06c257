"""A CSV row's seven fields as a product row, with the rules of `ProductCreate`.

Validating every row with `ProductCreate.model_validate` (a dict, a nested `Money`, lax
parsing of text) cost about 20 µs a row, more than PostgreSQL needs to store it. Almost every
row of a real file is plain: a SKU of letters and digits, ASCII digits for the numbers,
`true`/`false`. Such a row is checked here in a few string operations; any other row, good or
bad, goes to `ProductCreate` itself, which decides, so its error is exactly the one the
schema gives (column and message).

The quick check may only accept what the schema accepts, with the same values; it may refuse
more (the schema then accepts " 7", "+7", "1_000", "TRUE" itself). tests/features/imports/
test_rows.py compares the two on the boundaries and on generated input, so a rule tightened in
the schema and not here fails there.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from pydantic import ValidationError

from keel.core.types import MAX_MINOR_UNITS
from keel.features.catalog.schemas import ProductCreate

# The limits of keel.features.catalog.schemas (Sku, Name, Description, Stock).
SKU_MAX = 64
NAME_MAX = 200
DESCRIPTION_MAX = 10_000
STOCK_MAX = 1_000_000_000
_SKU = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*").fullmatch  # no NUL, no trailing newline
_CURRENCY = re.compile(r"[A-Z]{3}").fullmatch
# The spellings of a flag taken without the schema; an empty field is the default, true.
_FLAGS = {"": True, "true": True, "false": False, "1": True, "0": False}
_AMOUNT_DIGITS = len(str(MAX_MINOR_UNITS))
_STOCK_DIGITS = len(str(STOCK_MAX))


class ProductRow(NamedTuple):
    """A valid product as the import writes it (the columns of `products`, in this order)."""

    sku: str
    name: str
    description: str
    price_amount: int
    currency: str
    stock: int
    is_active: bool


COLUMNS = ProductRow._fields


class RowError(NamedTuple):
    column: str
    message: str


Fields = tuple[str, str, str, str, str, str, str]
"""sku, name, description, price, currency, stock, is_active: the CSV text of one row."""


def product_row(fields: Fields) -> ProductRow | RowError:
    """The row, or its first error as `ProductCreate` reports it."""
    sku, name, description, price, currency, stock, active = fields
    if (
        len(sku) <= SKU_MAX
        and _SKU(sku)
        and 0 < len(name) <= NAME_MAX
        and "\x00" not in name
        and len(description) <= DESCRIPTION_MAX
        and "\x00" not in description
        and len(price) <= _AMOUNT_DIGITS
        and price.isascii()
        and price.isdigit()
        and _CURRENCY(currency)
        and len(stock) <= _STOCK_DIGITS
        and stock.isascii()
        and (stock == "" or stock.isdigit())
        and active in _FLAGS
    ):
        amount = int(price)
        count = int(stock) if stock else 0
        if amount <= MAX_MINOR_UNITS and count <= STOCK_MAX:
            return ProductRow(sku, name, description, amount, currency, count, _FLAGS[active])
    return _by_the_schema(fields)


def _by_the_schema(fields: Fields) -> ProductRow | RowError:
    sku, name, description, price, currency, stock, active = fields
    try:
        product = ProductCreate.model_validate(
            {
                "sku": sku,
                "name": name,
                "description": description,
                "price": {"amount": price, "currency": currency},
                "stock": stock or 0,
                "is_active": active or True,
            },
            strict=False,  # CSV fields are text: "true", "100"
        )
    except ValidationError as exc:
        error = exc.errors()[0]  # one error per row is enough to fix it
        return RowError(_column_of(error["loc"]), error["msg"])
    return ProductRow(
        product.sku,
        product.name,
        product.description,
        product.price.amount,
        product.price.currency,
        product.stock,
        product.is_active,
    )


def _column_of(loc: tuple[int | str, ...]) -> str:
    if loc[:2] == ("price", "amount"):
        return "price"
    if loc[:2] == ("price", "currency"):
        return "currency"
    return str(loc[0]) if loc else ""
