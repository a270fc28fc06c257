"""`keel import-products FILE`: the API's product import, run here and now from a file."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from keel.core.commands import command_settings, console, errors, with_database

cli = typer.Typer()


@cli.command("import-products")
def import_products(
    file: Annotated[
        Path, typer.Argument(exists=True, dir_okay=False, readable=True, help="A product CSV.")
    ],
) -> None:
    """Import products from a CSV file here and now (the same import as the API's job)."""
    import gc

    from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn

    from keel.core.config import settings_as
    from keel.features.imports.products import MalformedFileError
    from keel.features.imports.service import import_local_file
    from keel.features.imports.settings import ImportsSettings

    settings = settings_as(ImportsSettings, command_settings())
    # As the server does at start-up: the modules loaded so far live as long as the process,
    # and full collections scanning them cost about a third of a large import (measured).
    gc.freeze()
    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        DownloadColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
    ) as bar:
        task = bar.add_task("Importing", total=file.stat().st_size)

        async def progress(done: int) -> None:
            bar.update(task, completed=done)

        try:
            result = with_database(
                settings, lambda database: import_local_file(database, settings, file, progress)
            )
        except MalformedFileError as exc:
            errors.print(f"[bold red]{exc}; nothing was imported.[/]")
            raise typer.Exit(code=1) from None
    console.print(
        f"[green]created {result.created}, updated {result.updated}[/], "
        f"[{'red' if result.failed else 'green'}]failed {result.failed}[/]"
    )
    for error in result.errors:
        console.print(f"  row {error['row']}, {error['column'] or 'row'}: {error['message']}")
    if result.errors_truncated:
        console.print(f"  … only the first {len(result.errors)} errors are listed")
