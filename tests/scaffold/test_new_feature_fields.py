"""`--field NAME:TYPE`: what is read, and every way of writing it that is refused."""

from __future__ import annotations

import pytest

from keel.scaffold.fields import (
    FILTERABLE,
    SORTABLE,
    FieldSpec,
    Kind,
    ScaffoldError,
    choose,
    parse_field,
    parse_fields,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("title:str", FieldSpec("title", Kind.STR)),
        ("notes:text?", FieldSpec("notes", Kind.TEXT, optional=True)),
        ("stock:int", FieldSpec("stock", Kind.INT)),
        ("price:money", FieldSpec("price", Kind.MONEY)),
        ("published:bool", FieldSpec("published", Kind.BOOL)),
        ("code:uuid?", FieldSpec("code", Kind.UUID, optional=True)),
        ("due_at:datetime?", FieldSpec("due_at", Kind.DATETIME, optional=True)),
        ("owner:user", FieldSpec("owner", Kind.USER)),
        (
            "status:enum[draft,live]",
            FieldSpec("status", Kind.ENUM, choices=("draft", "live")),
        ),
        (
            " status : enum[draft, live]? ".replace(" : ", ":"),
            FieldSpec("status", Kind.ENUM, optional=True, choices=("draft", "live")),
        ),
        ("product:ref[catalog]", FieldSpec("product", Kind.REF, target="catalog")),
        (
            "line:ref[orders.OrderItem]?",
            FieldSpec("line", Kind.REF, True, target="orders", target_model="OrderItem"),
        ),
    ],
)
def test_fields_are_read(text: str, expected: FieldSpec) -> None:
    assert parse_field(text) == expected


def test_references_and_money_name_their_columns() -> None:
    assert parse_field("owner:user").column == "owner_id"
    assert parse_field("product_id:ref[catalog]").column == "product_id"
    assert parse_field("price:money").columns == ("price_amount", "price_currency")
    assert parse_field("title:str").columns == ("title",)


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("title", "NAME:TYPE"),
        ("title:", "cannot read the type"),
        ("title:string", "unknown type"),
        ("title:str[5]", "unknown type"),
        ("title:str??", "cannot read the type"),
        ("Title:str", "lower-case identifier"),
        ("2fast:str", "lower-case identifier"),
        ("my-field:str", "lower-case identifier"),
        ("_hidden:str", "lower-case identifier"),
        ("naïve:str", "lower-case identifier"),
        ("a" * 25 + ":str", "longer than"),
        ("class:str", "Python keyword"),
        ("match:str", "Python keyword"),
        ("type:str", "Python keyword"),
        ("select:str", "SQL reserved word"),
        ("order:int", "SQL reserved word"),
        ("user:str", "SQL reserved word"),
        ("id:uuid", "reserved"),
        ("created_at:datetime", "reserved"),
        ("updated_at:datetime", "reserved"),
        ("metadata:text", "reserved"),
        ("page:int", "reserved"),
        ("sort:str", "reserved"),
        ("model_name:str", "reserved"),
        ("status:enum", "needs its values"),
        ("status:enum[]", "needs its values"),
        ("status:enum[only]", "two values"),
        ("status:enum[a,a]", "repeat"),
        ("status:enum[Draft,live]", "enum value"),
        ("status:enum[a b,c]", "enum value"),
        ("status:enum[" + "x" * 51 + ",y]", "enum value"),
        ("product:ref", "needs the feature"),
        ("product:ref[]", "needs the feature"),
        ("product:ref[Catalog]", "lower-case identifier"),
        ("product:ref[catalog.product]", "CapWords"),
        ("product:ref[class]", "Python keyword"),
    ],
)
def test_bad_fields_are_refused(text: str, says: str) -> None:
    with pytest.raises(ScaffoldError, match=says):
        parse_field(text)


@pytest.mark.parametrize(
    ("texts", "owned", "says"),
    [
        ([], False, "at least one"),
        (["title:str", "title:text"], False, "repeats"),
        (["price:money", "price_amount:int"], False, "repeats"),
        (["owner:user", "owner_id:uuid"], False, "repeats"),
        (["owner:user"], True, "owner's column"),
        (["owner_id:uuid"], True, "owner's column"),
    ],
)
def test_clashing_fields_are_refused(texts: list[str], owned: bool, says: str) -> None:
    with pytest.raises(ScaffoldError, match=says):
        parse_fields(texts, owned=owned)


def test_owner_may_be_a_field_of_rows_that_are_not_owned() -> None:
    assert [f.column for f in parse_fields(["owner:user"], owned=False)] == ["owner_id"]


FIELDS = parse_fields(
    [
        *("title:str", "stock:int", "price:money", "live:bool", "due:datetime"),
        *("kind:enum[a,b]", "owner:user", "product:ref[catalog]", "code:uuid"),
    ],
    owned=False,
)


def test_default_filters_and_sorts() -> None:
    filters = choose(FIELDS, None, what="filter", allowed=FILTERABLE)
    sorts = choose(FIELDS, None, what="sort", allowed=SORTABLE)
    assert [f.name for f in filters] == ["live", "kind", "owner", "product"]
    assert [f.name for f in sorts] == ["stock", "price", "due"]


def test_chosen_filters_by_name_or_column() -> None:
    chosen = choose(FIELDS, ["owner_id", "kind", "kind"], what="filter", allowed=FILTERABLE)
    assert [f.name for f in chosen] == ["owner", "kind"]
    assert choose(FIELDS, [], what="sort", allowed=SORTABLE) == []


@pytest.mark.parametrize(
    ("names", "what", "allowed", "says"),
    [
        (["nothing"], "filter", FILTERABLE, "not one of the fields"),
        (["title"], "filter", FILTERABLE, "only enum, bool, user, ref fields"),
        (["code"], "filter", FILTERABLE, "can be filtered"),
        (["title"], "sort", SORTABLE, "only int, money, datetime fields can be sorted"),
        (["live"], "sort", SORTABLE, "can be sorted"),
    ],
)
def test_bad_filter_and_sort_choices(
    names: list[str], what: str, allowed: tuple[Kind, ...], says: str
) -> None:
    with pytest.raises(ScaffoldError, match=says):
        choose(FIELDS, names, what=what, allowed=allowed)
