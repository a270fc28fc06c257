"""The `keel` command: serve, worker, migrate, check-config, create-admin, openapi, email
preview, audit, and the commands the enabled features add (`features/<name>/cli.py`:
import-products), which `FeatureCommands` finds by name and imports only when needed.

Command-line options are written back into the `KEEL_*` environment before settings are read,
so the server's worker processes (which read the environment afresh) see exactly what the
operator typed, and validation judges the combination that will really run.
"""

from __future__ import annotations

import asyncio
import importlib
import os
import shutil
import signal
import sys
import tempfile
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Column, Table
from typer._click import Command, Context
from typer.core import TyperGroup

from keel.core.commands import command_settings, console, errors, fail, set_env, with_database
from keel.core.errors import ConfigError
from keel.features.registry import command_modules
from keel.scaffold.cli import new_app

if TYPE_CHECKING:
    from keel.core.config import CoreSettings
    from keel.core.database import Database
    from keel.features.users.schemas import UserCreate


@cache
def feature_commands() -> dict[str, Command]:
    """The enabled features' commands by name, from their `cli.py` modules (imported here:
    each defers its heavy imports into the command itself)."""
    found: dict[str, Command] = {}
    for module in command_modules():
        found.update(typer.main.get_group(importlib.import_module(module).cli).commands)
    return found


class FeatureCommands(TyperGroup):
    """`keel`'s own commands, then the features'. A feature's module is imported only when
    every command is listed (`keel --help`) or a name is not core's: `keel migrate` and
    `keel check-config` load no feature (their cost is core's alone). A name is core's first:
    a feature cannot replace a core command."""

    def list_commands(self, ctx: Context) -> list[str]:
        core = super().list_commands(ctx)
        return [*core, *(name for name in feature_commands() if name not in core)]

    def get_command(self, ctx: Context, cmd_name: str) -> Command | None:
        return super().get_command(ctx, cmd_name) or feature_commands().get(cmd_name)


cli = typer.Typer(
    cls=FeatureCommands,
    help="Keel: a production-grade FastAPI shop backend.",
    no_args_is_help=True,
)
migrate_cli = typer.Typer(help="Database schema migrations (Alembic).", no_args_is_help=True)
cli.add_typer(migrate_cli, name="migrate")
email_cli = typer.Typer(help="The emails Keel sends.", no_args_is_help=True)
cli.add_typer(email_cli, name="email")
cli.add_typer(new_app, name="new")


def _prepare_metrics_dir(workers: int) -> None:
    """Several processes share metrics through a directory that must start empty."""
    if workers <= 1 or os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return
    directory = Path(tempfile.gettempdir()) / f"keel-metrics-{os.getpid()}"
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(directory)


@cli.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Interface to bind.")] = None,
    port: Annotated[int | None, typer.Option(help="Port to bind.")] = None,
    workers: Annotated[int | None, typer.Option(help="Worker processes.")] = None,
    reload: Annotated[bool, typer.Option(help="Restart on code changes (development).")] = False,
) -> None:
    """Run the HTTP server (uvicorn)."""
    import uvicorn

    from keel.core.lifespan import prepare_schema
    from keel.core.serving import HTTP_PROTOCOL, websocket_server_options

    set_env(host=host, port=port, workers=workers)
    settings = command_settings()
    try:
        with_database(settings, lambda database: prepare_schema(database, settings))
    except ConfigError as error:
        fail(error)
    _prepare_metrics_dir(settings.workers)
    # uvicorn re-raises SIGTERM once it has shut down cleanly; with the default disposition
    # that would end the process with -15 (143 in a container) instead of 0.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    uvicorn.run(
        "keel.main:create_app",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=None if reload else settings.workers,
        reload=reload,
        log_config=None,
        access_log=False,
        proxy_headers=True,
        forwarded_allow_ips=settings.forwarded_allow_ips,
        timeout_graceful_shutdown=settings.graceful_shutdown_seconds,
        lifespan="on",
        http=HTTP_PROTOCOL,
        server_header=False,  # no `server: uvicorn`: nothing to gain from advertising it
        **websocket_server_options(settings),
    )


@cli.command()
def worker() -> None:
    """Run background jobs from Redis; start as many as the load needs, on any host."""
    from keel.core.logging import configure_logging
    from keel.worker import run_worker

    settings = command_settings()
    if settings.jobs_embedded:
        errors.print(
            "[bold red]keel worker needs KEEL_REDIS_URL (and KEEL_JOB_BROKER unset or redis); "
            "without Redis, jobs run inside the API process.[/]"
        )
        raise typer.Exit(code=2)
    configure_logging(
        level=settings.log_level, json=settings.json_logs, trace_ids=settings.otel_enabled
    )
    asyncio.run(run_worker(settings))


@cli.command("check-config")
def check_config() -> None:
    """Print the effective settings (secrets masked) and every problem found.

    On a terminal, a table; piped, one `KEEL_NAME=value` line per setting, never cut to a
    terminal's width. Invalid values are listed with everything else that is wrong, not one
    per run.
    """
    from keel.core.config import diagnose_settings

    settings, problems = diagnose_settings()
    if settings is not None:
        shown = {f"KEEL_{name.upper()}": value for name, value in settings.display().items()}
        if console.is_terminal:
            table = Table(
                Column("setting", no_wrap=True),
                Column("value", overflow="fold"),  # wrapped, never cut with an ellipsis
                title=f"Keel settings ({settings.environment})",
            )
            for name, value in shown.items():
                table.add_row(name, value)
            console.print(table)
        else:
            for name, value in shown.items():
                typer.echo(f"{name}={value}")
    if problems:
        message = str(ConfigError(problems))
        if errors.is_terminal:
            errors.print(message, style="bold red", markup=False, highlight=False)
        else:
            typer.echo(message, err=True)
        raise typer.Exit(code=2)
    typer.echo("No problems found.")


@cli.command("openapi")
def openapi(
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write here instead of stdout.")
    ] = None,
) -> None:
    """Write the OpenAPI document (JSON) without starting a server or opening a database.

    The document is this configuration's: limits that are settings (the largest upload, the
    accepted file types) are the ones this deployment enforces. It is the input for client
    generators; CI builds the TypeScript client from it.
    """
    import json

    from keel.main import create_app

    set_env(log_level="ERROR")  # stdout is the document: no start-up warnings in it
    document = json.dumps(create_app(command_settings(production_checks=False)).openapi(), indent=2)
    if output is None:
        typer.echo(document)
        return
    try:
        output.write_text(document + "\n", encoding="utf-8")
    except OSError as exc:
        typer.echo(f"Cannot write {output}: {exc.strerror}", err=True)
        raise typer.Exit(code=2) from None


@cli.command("create-admin")
def create_admin(
    email: Annotated[str, typer.Option(help="The admin's email address.")],
    full_name: Annotated[str, typer.Option(help="Display name.")] = "Administrator",
) -> None:
    """Create an admin account, or make an existing account an active admin (idempotent).

    The password comes from KEEL_ADMIN_PASSWORD when set (automation), otherwise a prompt.
    An existing account keeps its password.
    """
    from pydantic import ValidationError

    from keel.features.users.schemas import UserCreate

    settings = command_settings()
    if settings.admin_password is not None:
        password = settings.admin_password.get_secret_value()
    else:
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    try:
        data = UserCreate(email=email, password=password, full_name=full_name)
    except ValidationError as exc:
        for error in exc.errors():
            errors.print(f"[red]{'.'.join(map(str, error['loc']))}: {error['msg']}[/]")
        raise typer.Exit(code=2) from None
    created = with_database(settings, lambda database: _ensure_admin(database, settings, data))
    verb = "Created" if created else "Updated existing account; password unchanged:"
    console.print(f"[green]{verb} admin {data.email}[/]")


async def _ensure_admin(database: Database, settings: CoreSettings, data: UserCreate) -> bool:
    from keel.core.security.passwords import PasswordHasher
    from keel.features.users import service as users
    from keel.features.users.models import Role

    async with database.transaction() as session:
        existing = await users.get_by_email(session, data.email)
        if existing is None:
            hasher = PasswordHasher.from_settings(settings)
            await users.create_user(session, hasher, data, roles={Role.ADMIN}, verified=True)
            return True
        existing.set_roles({*existing.roles, Role.ADMIN})
        existing.is_active = True
        return False


@migrate_cli.command("upgrade")
def migrate_upgrade(revision: Annotated[str, typer.Argument()] = "heads") -> None:
    """Upgrade the database (default: every branch to its head: core's and each feature's)."""
    from keel.migrations import runner

    settings = command_settings()
    with_database(settings, lambda db: runner.upgrade(db.engine, revision), bounded=False)
    console.print(f"[green]Upgraded to {revision}.[/]")


@migrate_cli.command("downgrade")
def migrate_downgrade(revision: Annotated[str, typer.Argument()]) -> None:
    """Downgrade the database to a revision (`base` removes every table; `catalog@base`
    one feature's)."""
    from keel.migrations import runner

    settings = command_settings()
    with_database(settings, lambda db: runner.downgrade(db.engine, revision), bounded=False)
    console.print(f"[green]Downgraded to {revision}.[/]")


@migrate_cli.command("current")
def migrate_current() -> None:
    """Show the database's revisions and whether every branch is at its head."""
    from keel.migrations import runner

    current = with_database(command_settings(), lambda db: runner.current_revisions(db.engine))
    console.print(f"current: {', '.join(sorted(current)) or '(empty database)'}")
    console.print(f"heads:   {', '.join(sorted(runner.head_revisions()))}")
    if runner.pending_revisions(current):
        console.print("[yellow]The database is behind head: run `keel migrate upgrade`.[/]")


@migrate_cli.command("revision")
def migrate_revision(
    message: Annotated[str, typer.Option("--message", "-m", help="What the revision does.")],
    feature: Annotated[
        str | None, typer.Option(help="The feature it belongs to (default: core).")
    ] = None,
    autogenerate: Annotated[bool, typer.Option(help="Diff the models against the DB.")] = True,
) -> None:
    """Create a new revision file (autogenerated from the models by default), in core's
    history or in a feature's (`keel/features/<feature>/migrations/`)."""
    from keel.migrations import runner

    try:
        path = with_database(
            command_settings(),
            lambda db: runner.revision(
                db.engine, message, feature=feature, autogenerate=autogenerate
            ),
        )
    except ConfigError as error:
        fail(error)
    console.print(f"[green]Wrote {path}[/]")


@email_cli.command("preview")
def email_preview(
    name: Annotated[str, typer.Argument(help="welcome, verify_email, password_reset, ...")],
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help="FILE.html: the HTML part; FILE.txt: the text part; anything else: the whole "
            "message (.eml). Without it, the whole message is printed.",
        ),
    ] = None,
) -> None:
    """Render one email with sample values (product name and links from the settings)."""
    from keel.core.email import mime_message
    from keel.features.auth import emails

    try:
        message = emails.Message(name)
    except ValueError:
        known = ", ".join(m.value for m in emails.Message)
        errors.print(f"[red]Unknown email {name!r}; one of: {known}[/]")
        raise typer.Exit(code=2) from None
    settings = command_settings(production_checks=False)
    email = emails.preview(settings, message)
    suffix = output.suffix.lower() if output is not None else ""
    if suffix == ".html":
        rendered = email.html or ""
    elif suffix == ".txt":
        rendered = email.body
    else:
        rendered = mime_message(email, settings.smtp_from).as_string()
    if output is None:
        typer.echo(rendered)
        return
    output.write_text(rendered, encoding="utf-8")
    console.print(f"[green]Wrote {email.subject!r} to {output}[/]")


@cli.command(
    "audit",
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
    add_help_option=False,
)
def audit(ctx: typer.Context) -> None:
    """Audit a FastAPI project for production readiness: `keel audit [PATH] [keel-audit
    options]` (see `keel audit --help`). Static: the audited code is never imported."""
    from keel_audit.cli import main as audit_main

    raise typer.Exit(code=audit_main(list(ctx.args)))


def main() -> None:
    try:
        cli()
    except ConfigError as error:  # raised inside a command after settings were accepted
        errors.print(f"[bold red]{error}[/]")
        sys.exit(2)
