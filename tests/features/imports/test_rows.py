"""The import's quick row check against `ProductCreate`: same rows accepted, same values,
same errors. The quick check may only take a shortcut the schema agrees with."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from keel.features.imports.rows import Fields, ProductRow, RowError, _by_the_schema, product_row

GOOD: Fields = ("SKU-1", "Lamp", "A lamp", "1999", "EUR", "5", "true")


def with_field(index: int, value: str) -> Fields:
    fields = list(GOOD)
    fields[index] = value
    return (fields[0], fields[1], fields[2], fields[3], fields[4], fields[5], fields[6])


# Each column's edge cases: what the quick check takes, what only the schema takes, and what
# nobody takes (lengths at and past the limit, 2^63, NUL, Unicode digits, spaces, newlines).
EDGES: dict[int, list[str]] = {
    0: ["A", "a" * 64, "a" * 65, "", "A-1\n", "-A", "A_b.c-9", "é1", "A\x00", "A B", " A"],
    1: ["x", "n" * 200, "n" * 201, "", "Bad\x00name", "Ünïcode ✓", "two\nlines"],
    2: ["", "d" * 10_000, "d" * 10_001, "with\x00nul", 'quote " and, comma'],
    3: [
        "0",
        "007",
        "1000000000000",
        "1000000000001",
        "9223372036854775808",
        "99999999999999",
        "-1",
        "-0",
        "+5",
        " 100",
        "100 ",
        "1_000",
        "1.0",
        "1e3",
        "٣",
        "²",
        "",
        "abc",
        "1\x00",
    ],
    4: ["EUR", "eur", "EU", "EURO", "ÉUR", "E\x00R", ""],
    5: [
        "",
        "0",
        "1000000000",
        "1000000001",
        "9223372036854775808",
        "-1",
        "٣",
        " 3",
        "3\x00",
        "00000000001",
    ],
    6: ["", "true", "false", "1", "0", "TRUE", "yes", "off", "2", " true", "tru\x00"],
}
CASES = [(index, value) for index, values in EDGES.items() for value in values]


@pytest.mark.parametrize(("index", "value"), CASES)
def test_quick_check_agrees_with_the_schema_on_the_edges(index: int, value: str) -> None:
    fields = with_field(index, value)
    assert product_row(fields) == _by_the_schema(fields)


def test_a_plain_row_is_taken_with_its_values() -> None:
    assert product_row(GOOD) == ProductRow("SKU-1", "Lamp", "A lamp", 1999, "EUR", 5, True)
    assert product_row(with_field(5, "")) == ProductRow(
        "SKU-1", "Lamp", "A lamp", 1999, "EUR", 0, True
    )
    assert product_row(with_field(6, "")) == ProductRow(*GOOD[:3], 1999, "EUR", 5, True)
    assert product_row(with_field(6, "0")) == ProductRow(*GOOD[:3], 1999, "EUR", 5, False)


@pytest.mark.parametrize(
    ("index", "value", "column", "words"),
    [
        (0, "a" * 65, "sku", "at most 64"),
        (0, "A\x00", "sku", "NUL"),
        (1, "", "name", "at least 1"),
        (1, "Bad\x00name", "name", "NUL"),
        (2, "d" * 10_001, "description", "at most 10000"),
        (3, "9223372036854775808", "price", "less than or equal to 1000000000000"),
        (3, "1000000000001", "price", "less than or equal to 1000000000000"),
        (3, "-1", "price", "greater than or equal to 0"),
        (3, "abc", "price", "valid integer"),
        (3, "1\x00", "price", "NUL"),
        (4, "euro", "currency", "pattern"),
        (5, "9223372036854775808", "stock", "less than or equal to 1000000000"),
        (6, "2", "is_active", "valid boolean"),
    ],
)
def test_bad_fields_are_refused_with_the_schemas_error(
    index: int, value: str, column: str, words: str
) -> None:
    error = product_row(with_field(index, value))
    assert isinstance(error, RowError)
    assert error.column == column
    assert words in error.message


def test_the_first_bad_column_is_the_one_reported() -> None:
    fields: Fields = ("bad sku", "", "", "abc", "euro", "x", "maybe")
    schema = _by_the_schema(fields)
    assert isinstance(schema, RowError)
    assert product_row(fields) == schema
    assert schema.column == "sku"


_TEXT = st.one_of(
    st.text(alphabet=st.sampled_from([*"aZ09-._ ,\"'\n\x00é٣²+"]), max_size=16),
    st.sampled_from(["true", "false", "EUR", "1", "TRUE", " 7", "1_0"]),
)
_NUMBER = st.one_of(st.integers(min_value=-5, max_value=2**64).map(str), _TEXT, st.just(""))


@settings(max_examples=400, deadline=None)
@given(
    sku=st.one_of(st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._-]{0,70}", fullmatch=True), _TEXT),
    name=st.one_of(st.text(min_size=1, max_size=210), _TEXT),
    description=_TEXT,
    price=_NUMBER,
    currency=st.one_of(st.sampled_from(["EUR", "USD", "eur", "EU"]), _TEXT),
    stock=_NUMBER,
    active=st.one_of(st.sampled_from(["", "true", "false", "0", "1", "True", "no"]), _TEXT),
)
def test_quick_check_agrees_with_the_schema_on_generated_rows(
    sku: str, name: str, description: str, price: str, currency: str, stock: str, active: str
) -> None:
    fields: Fields = (sku, name, description, price, currency, stock, active)
    assert product_row(fields) == _by_the_schema(fields)
