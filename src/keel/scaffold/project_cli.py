"""The `keel new project` command: options in, `project.new_project` does the work."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer


def interactive() -> bool:
    """Ask for the features only when a person is there to answer."""
    return sys.stdin.isatty()


def project(
    directory: Annotated[Path, typer.Argument(help="Where to write it (new or empty).")],
    name: Annotated[str, typer.Option(help="Python package and command name, e.g. acme.")],
    env_prefix: Annotated[
        str | None, typer.Option(help="Settings prefix (default: NAME upper-cased + '_').")
    ] = None,
    with_: Annotated[
        list[str] | None,
        typer.Option("--with", help="Optional features to keep (comma-separated; 'none')."),
    ] = None,
    without: Annotated[
        list[str] | None, typer.Option(help="Optional features to leave out (comma-separated).")
    ] = None,
    dry_run: Annotated[bool, typer.Option(help="Print the files; write nothing.")] = False,
) -> None:
    """A new service from this Keel checkout: renamed, with only the features chosen."""
    from keel.scaffold import project_layout
    from keel.scaffold.project import ScaffoldError, new_project

    if with_ is None and without is None and interactive():
        with_ = [
            option
            for option in project_layout.FEATURE_OPTIONS
            if typer.confirm(f"Keep {option}?", default=True)
        ] or ["none"]
    try:
        new_project(
            directory,
            name=name,
            env_prefix=env_prefix,
            with_=with_,
            without=without,
            dry_run=dry_run,
            say=typer.echo,
        )
    except ScaffoldError as error:
        typer.secho(f"keel new project: {error}", err=True, fg="red")
        raise typer.Exit(code=2) from error
