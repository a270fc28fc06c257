"""The features this service runs: one line each, in mounting order.

Adding a feature is appending its name to `ENABLED`; removing one is deleting its line, its
package (with its tests and docs) and, if it has settings, their import and base in
`keel/settings.py`. Everything else (routers, models, job handlers) is found from
`keel.features.<name>.feature:FEATURE`; migrations and CLI commands are found by name in the
package (`migrations/`, `cli.py`), without importing the feature.
"""

from __future__ import annotations

import importlib
import importlib.util
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

from keel.core.errors import ConfigError
from keel.core.features import Feature, Resources

if TYPE_CHECKING:  # `keel` reads `command_modules` before any command needs SQLAlchemy
    from sqlalchemy import MetaData

    from keel.core.jobs.handlers import JobHandlers, Maintenance

# Busiest routers first: FastAPI 0.165 matches a request against the included routers'
# routes one by one, twice per request, at a few µs a route; the prefixes are disjoint, so
# the order changes nothing else (bench/README.md, per-request cost). New features go last.
ENABLED: tuple[str, ...] = (
    "health",
    "catalog",
    "orders",
    "users",
    "auth",
    "payments",
    "files",
    "jobs",
    "imports",
    "realtime",
)

PACKAGE = "keel.features"


@cache
def features() -> tuple[Feature, ...]:
    """Every enabled feature's declaration, with its models imported (so `Base.metadata`
    knows its tables). Refuses a feature whose `requires` names one that is not enabled."""
    loaded = tuple(_load(name) for name in ENABLED)
    missing = [
        f"feature {feature.name!r} requires {needed!r}, which is not enabled"
        for feature in loaded
        for needed in feature.requires
        if needed not in ENABLED
    ]
    if missing:
        raise ConfigError(missing)
    return loaded


def _load(name: str) -> Feature:
    module = importlib.import_module(f"{PACKAGE}.{name}.feature")
    feature = module.FEATURE
    if not isinstance(feature, Feature) or feature.name != name:
        raise ConfigError([f"{PACKAGE}.{name}.feature.FEATURE is not Feature(name={name!r})"])
    if importlib.util.find_spec(f"{PACKAGE}.{name}.models") is not None:
        importlib.import_module(f"{PACKAGE}.{name}.models")
    return feature


def feature_directory(name: str) -> Path:
    """Where feature `name`'s package is, found without importing it."""
    spec = importlib.util.find_spec(f"{PACKAGE}.{name}")
    if spec is None or spec.origin is None:
        raise ConfigError([f"feature {name!r} is enabled but {PACKAGE}.{name} is missing"])
    return Path(spec.origin).parent


def migration_directories() -> tuple[Path, ...]:
    """The enabled features' revision directories (`<package>/migrations`), where present.

    Found on disk rather than imported, so the migrations run without loading the app."""
    found = (feature_directory(name) / "migrations" for name in ENABLED)
    return tuple(directory for directory in found if directory.is_dir())


COMMAND_MODULE = "cli"
"""A feature's commands for `keel`: a `typer.Typer` named `cli` in `<package>/cli.py`."""


def command_modules() -> tuple[str, ...]:
    """The enabled features' command modules (`keel.features.<name>.cli`), where present.

    Found on disk, not imported: `keel` lists these commands without loading any feature, and
    a core command (`keel migrate`, `keel check-config`) never imports one."""
    return tuple(
        f"{PACKAGE}.{name}.{COMMAND_MODULE}"
        for name in ENABLED
        if (feature_directory(name) / f"{COMMAND_MODULE}.py").is_file()
    )


def features_required_by(name: str) -> tuple[str, ...]:
    """What feature `name` requires, as its declaration says."""
    return next(feature.requires for feature in features() if feature.name == name)


def job_handlers() -> JobHandlers:
    """Every enabled feature's job handlers by kind (the API and `keel worker` run these)."""
    return {kind: run for feature in features() for kind, run in feature.job_handlers.items()}


def maintenance() -> tuple[Maintenance, ...]:
    """Periodic upkeep, run by every process that consumes jobs (`KEEL_MAINTENANCE_SECONDS`)."""
    return tuple(task for feature in features() for task in feature.maintenance)


def metadata() -> MetaData:
    """`Base.metadata` knowing every table: core's and the enabled features' (autogenerate
    and the tests' schema checks compare against this)."""
    from keel.core.models import Base

    importlib.import_module("keel.core.idempotency")
    importlib.import_module("keel.core.jobs.models")
    features()
    return Base.metadata


def resources() -> tuple[Resources, ...]:
    """The enabled features' lifespan parts, opened after the core resources."""
    return tuple(feature.resources for feature in features() if feature.resources is not None)
