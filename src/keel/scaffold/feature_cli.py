"""`keel new feature`: the command's options, handed to `scaffold.feature`."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer


def _names(value: str | None) -> list[str] | None:
    return None if value is None else [name.strip() for name in value.split(",") if name.strip()]


def feature(
    name: Annotated[
        str, typer.Argument(help="The feature's package and table, plural: e.g. tasks.")
    ],
    field: Annotated[
        list[str],
        typer.Option(
            "--field",
            "-f",
            help="NAME:TYPE, TYPE one of str, text, int, money, bool, uuid, datetime, user, "
            "enum\\[a,b], ref\\[feature]; a trailing ? makes it optional. Repeat for each field.",
        ),
    ],
    owned: Annotated[
        bool, typer.Option(help="Rows belong to their creator; others get 404.")
    ] = False,
    public_read: Annotated[bool, typer.Option(help="Anyone may read, signed in or not.")] = False,
    admin_write: Annotated[bool, typer.Option(help="Only admins create, change, delete.")] = False,
    model: Annotated[
        str | None, typer.Option(help="The model class (default: singular of NAME).")
    ] = None,
    sort: Annotated[
        str | None,
        typer.Option(help="Sortable fields, comma-separated (default: numbers, money, times)."),
    ] = None,
    filter_: Annotated[
        str | None,
        typer.Option(
            "--filter", help="Filterable fields, comma-separated (default: enum, bool, refs)."
        ),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option(help="Print what would be written; write nothing.")
    ] = False,
    project: Annotated[Path, typer.Option(help="The project's root directory.")] = Path(),
) -> None:
    """Add a CRUD feature in Keel's style: package, registration, checked migration, tests."""
    from keel.scaffold import feature as generator
    from keel.scaffold.fields import ScaffoldError
    from keel.scaffold.layout import find_project

    started = time.perf_counter()
    access = generator.Access(owned=owned, public_read=public_read, admin_write=admin_write)
    request = generator.Request(name, field, access, model, _names(sort), _names(filter_))
    try:
        found = find_project(project.resolve())
        result = generator.plan(found, request)
        if dry_run:
            typer.echo(generator.describe(found, result))
            return
        written = generator.write(found, result)
    except ScaffoldError as error:
        typer.echo(f"keel new feature: {error}", err=True)
        raise typer.Exit(code=2) from None
    for path in written:
        typer.echo(f"  {path.relative_to(found.root)}")
    typer.echo(f"Created the feature {name} in {time.perf_counter() - started:.1f} s.")
