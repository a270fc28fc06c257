"""`--field NAME:TYPE` as `keel new feature` reads it, and the names a feature may not use.

TYPE is one of `str`, `text`, `int`, `money`, `bool`, `uuid`, `datetime`, `user`,
`enum[a,b,c]` or `ref[feature]` (`ref[feature.Model]` when that feature has several
models); a trailing `?` makes the field optional (nullable, may be left out). `user` and
`ref` fields are references: the column is the name with `_id` added (`owner:user` is
`owner_id`, a foreign key to `users.id`). Every refusal is a `ScaffoldError` whose message
says what to type instead; the command prints it and exits with 2.

Only parsing and the rules of names live here; what a field becomes in each generated file
is `feature.py`'s.
"""

from __future__ import annotations

import keyword
import re
from dataclasses import dataclass
from enum import StrEnum

NAME = re.compile(r"^[a-z][a-z0-9_]*$")
MAX_NAME = 24
"""Feature and field names: short enough that every index and constraint name built from
them stays within PostgreSQL's 63 characters (checked again on the whole set)."""
MAX_CHOICE = 50

_SQL_RESERVED_WORDS = """
    all analyse analyze and any array as asc asymmetric authorization between binary both case
    cast check collate column constraint create cross current_date current_role current_time
    current_timestamp current_user default deferrable desc distinct do else end except false
    fetch for foreign freeze from full grant group having ilike in initially inner intersect
    into is isnull join lateral leading left like limit localtime localtimestamp natural not
    notnull null offset on only or order outer overlaps placing primary references returning
    right select session_user similar some symmetric table tablesample then to trailing true
    union unique user using variadic verbose when where window with
"""
SQL_RESERVED = frozenset(_SQL_RESERVED_WORDS.split())
"""PostgreSQL's reserved key words (and SQLite's that overlap): a table or column named so
needs quoting in every hand-written statement, so it is refused up front."""

RESERVED_FIELDS = frozenset(
    {
        # every row has these
        "id",
        "created_at",
        "updated_at",
        # the list's own query parameters
        "page",
        "page_size",
        "sort",
        # attributes of SQLAlchemy's declarative classes and pydantic's models
        "metadata",
        "registry",
        "query",
        "copy",
        "dict",
        "json",
        "schema",
        "construct",
        "validate",
        "fields",
    }
)


SOFT_KEYWORDS = frozenset({*keyword.softkwlist, "_", "case", "match", "type"})
"""Soft keywords of every Python Keel supports (`type` is one from 3.12), whichever runs."""


class ScaffoldError(Exception):
    """A refusal with a message for the person at the terminal (exit code 2)."""


class Kind(StrEnum):
    STR = "str"
    TEXT = "text"
    INT = "int"
    MONEY = "money"
    BOOL = "bool"
    UUID = "uuid"
    DATETIME = "datetime"
    ENUM = "enum"
    USER = "user"
    REF = "ref"


SIMPLE_KINDS = {kind.value: kind for kind in Kind if kind not in (Kind.ENUM, Kind.REF)}
REFERENCES = (Kind.USER, Kind.REF)
FILTERABLE = (Kind.ENUM, Kind.BOOL, Kind.USER, Kind.REF)
SORTABLE = (Kind.INT, Kind.MONEY, Kind.DATETIME)

_TYPE = re.compile(r"^(?P<kind>[a-z]+)(?:\[(?P<argument>[^\]]*)\])?(?P<optional>\?)?$")
_MODEL = re.compile(r"^[A-Z][A-Za-z0-9]*$")


@dataclass(frozen=True, slots=True)
class FieldSpec:
    name: str
    kind: Kind
    optional: bool = False
    choices: tuple[str, ...] = ()
    target: str | None = None
    """REF: the feature referred to."""
    target_model: str | None = None
    """REF: the model class named in `ref[feature.Model]`, else None (resolved later)."""

    @property
    def column(self) -> str:
        """The attribute, column and API name; a reference's ends in `_id`."""
        if self.kind in REFERENCES and not self.name.endswith("_id"):
            return f"{self.name}_id"
        return self.name

    @property
    def columns(self) -> tuple[str, ...]:
        """Every column the field takes (money takes two)."""
        if self.kind is Kind.MONEY:
            return (f"{self.name}_amount", f"{self.name}_currency")
        return (self.column,)

    @property
    def filterable(self) -> bool:
        return self.kind in FILTERABLE

    @property
    def sortable(self) -> bool:
        return self.kind in SORTABLE


def check_identifier(name: str, what: str) -> None:
    """Refuse anything that is not a lower-case Python identifier usable as a table or column
    name: keywords, soft keywords (`match`, `type`, ...), SQL reserved words."""
    if not NAME.match(name):
        raise ScaffoldError(
            f"{what} {name!r} is not a lower-case identifier: start with a letter, then letters, "
            "digits or underscores (e.g. blog_posts)"
        )
    if len(name) > MAX_NAME:
        raise ScaffoldError(f"{what} {name!r} is longer than {MAX_NAME} characters")
    if keyword.iskeyword(name) or name in SOFT_KEYWORDS:
        raise ScaffoldError(f"{what} {name!r} is a Python keyword; choose another name")
    if name in SQL_RESERVED:
        raise ScaffoldError(f"{what} {name!r} is an SQL reserved word; choose another name")


def check_model_name(name: str) -> None:
    if not _MODEL.match(name) or keyword.iskeyword(name):
        raise ScaffoldError(f"model name {name!r} must be a CapWords identifier, e.g. BlogPost")


def _choices(argument: str | None, name: str) -> tuple[str, ...]:
    if not argument:
        raise ScaffoldError(f"field {name!r}: enum needs its values, e.g. {name}:enum[draft,live]")
    choices = tuple(choice.strip() for choice in argument.split(","))
    for choice in choices:
        if not NAME.match(choice) or len(choice) > MAX_CHOICE:
            raise ScaffoldError(
                f"field {name!r}: enum value {choice!r} must be a lower-case identifier of at "
                f"most {MAX_CHOICE} characters"
            )
    if len(set(choices)) != len(choices):
        raise ScaffoldError(f"field {name!r}: enum values repeat")
    if len(choices) < 2:
        raise ScaffoldError(f"field {name!r}: an enum needs two values at least (else: bool)")
    return choices


def _target(argument: str | None, name: str) -> tuple[str, str | None]:
    if not argument:
        raise ScaffoldError(f"field {name!r}: ref needs the feature, e.g. {name}:ref[catalog]")
    feature, _, model = argument.partition(".")
    check_identifier(feature, f"field {name!r}: feature")
    if model:
        check_model_name(model)
    return feature, model or None


def parse_field(text: str) -> FieldSpec:
    """One `--field` value: `title:str`, `due_at:datetime?`, `status:enum[a,b]`,
    `product:ref[catalog]`, `owner:user`."""
    name, separator, type_text = text.strip().partition(":")
    if not separator:
        raise ScaffoldError(f"--field {text!r}: write NAME:TYPE, e.g. title:str")
    check_identifier(name, "field name")
    if name in RESERVED_FIELDS or name.startswith("model_"):
        raise ScaffoldError(f"field name {name!r} is reserved; choose another name")
    match = _TYPE.match(type_text.strip())
    if match is None:
        raise ScaffoldError(f"field {name!r}: cannot read the type {type_text!r}")
    kind_text, argument = match["kind"], match["argument"]
    optional = match["optional"] is not None
    if kind_text == Kind.ENUM:
        return FieldSpec(name, Kind.ENUM, optional, choices=_choices(argument, name))
    if kind_text == Kind.REF:
        feature, model = _target(argument, name)
        return FieldSpec(name, Kind.REF, optional, target=feature, target_model=model)
    kind = SIMPLE_KINDS.get(kind_text)
    if kind is None or argument is not None:
        known = ", ".join([*SIMPLE_KINDS, "enum[a,b]", "ref[feature]"])
        raise ScaffoldError(f"field {name!r}: unknown type {type_text!r}; one of {known}")
    return FieldSpec(name, kind, optional)


def parse_fields(texts: list[str], *, owned: bool) -> list[FieldSpec]:
    """Every `--field`, refusing two fields that would share a column (`price:money` and
    `price_amount:int`), and `owner_id` when the rows are owned."""
    if not texts:
        raise ScaffoldError("give at least one --field NAME:TYPE")
    fields = [parse_field(text) for text in texts]
    taken = {"id", "created_at", "updated_at"} | ({"owner_id"} if owned else set())
    for field in fields:
        for column in field.columns:
            if column in taken:
                owner = owned and column == "owner_id"
                reason = "is the owner's column (--owned)" if owner else "repeats"
                raise ScaffoldError(f"field {field.name!r}: the column {column!r} {reason}")
            taken.add(column)
    return fields


def choose(
    fields: list[FieldSpec], names: list[str] | None, *, what: str, allowed: tuple[Kind, ...]
) -> list[FieldSpec]:
    """The fields named by `--sort`/`--filter`, or by default every field of the kinds that
    suit (filters: enum, bool and references; sorts: numbers, money and times)."""
    if names is None:
        return [field for field in fields if field.kind in allowed]
    by_name = {field.name: field for field in fields} | {field.column: field for field in fields}
    chosen = []
    for name in names:
        field = by_name.get(name)
        if field is None:
            raise ScaffoldError(f"--{what} {name!r} is not one of the fields")
        if field.kind not in allowed:
            kinds = ", ".join(kind.value for kind in allowed)
            raise ScaffoldError(f"--{what} {name!r}: only {kinds} fields can be {what}ed on")
        if field not in chosen:
            chosen.append(field)
    return chosen
