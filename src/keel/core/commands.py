"""What every `keel` command shares: the consoles, settings as a command reads them, and a
short-lived database. Features' own commands (`features/<name>/cli.py`) use these too, so
they behave like the built-in ones (exit code 2 and the problems listed on a bad
configuration)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, NoReturn

import typer
from rich.console import Console

from keel.core.errors import ConfigError

if TYPE_CHECKING:  # imported by the commands that read settings, not by `keel --help`
    from keel.core.config import CoreSettings

console = Console()
errors = Console(stderr=True)


def set_env(**values: Any) -> None:
    """Write command-line options back into `KEEL_*` before settings are read."""
    from keel.core.config import get_settings

    for name, value in values.items():
        if value is not None:
            os.environ[f"KEEL_{name.upper()}"] = str(value)
    get_settings.cache_clear()


def fail(error: ConfigError) -> NoReturn:
    errors.print(f"[bold red]{error}[/]")
    raise typer.Exit(code=2)


def command_settings(*, production_checks: bool = True) -> CoreSettings:
    from keel.core.config import ensure_safe, get_settings

    try:
        settings = get_settings()
        return ensure_safe(settings) if production_checks else settings
    except ConfigError as error:
        fail(error)


def with_database(
    settings: CoreSettings, action: Callable[[Any], Awaitable[Any]], *, bounded: bool = True
) -> Any:
    """Run one async action against a short-lived engine (the CLI has no lifespan);
    `bounded=False` for migrations, which may outlast any statement timeout."""
    from keel.core.database import Database

    async def run() -> Any:
        database = Database.from_settings(settings, bounded=bounded)
        try:
            return await action(database)
        finally:
            await database.dispose()

    return asyncio.run(run())
