"""What a feature contributes to the app, declared in one place: its `feature.py`.

Core never names a feature. Each package `keel.features.<name>` defines
`FEATURE = Feature(...)` in `feature.py`, and `keel.features.registry` loads the features it
lists; the app factory, the lifespan and the worker read what they need from these
declarations. Two things a feature has are found by name instead, so finding them imports
no feature: its revisions (`<package>/migrations/`) and its commands (`<package>/cli.py`).
Deleting a feature is deleting its package and its registry line (and, for a feature with
settings, its two lines in `keel/settings.py`): nothing else refers to it. Every field but
the name is optional, so a feature says only what it has.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fastapi import APIRouter

    from keel.core.config import CoreSettings
    from keel.core.events import EventHub
    from keel.core.jobs.handlers import JobHandler, Maintenance
    from keel.core.openapi import OpenApiAdjuster
    from keel.core.tracing import Tracing


@dataclass(frozen=True, slots=True)
class ResourceContext:
    """What a feature's resources may be built from: the core resources already open."""

    settings: CoreSettings
    event_hub: EventHub
    tracing: Tracing | None


@dataclass(frozen=True, slots=True)
class FeatureResources:
    """What a feature's lifespan part yields.

    `state` entries join the app state (a request reads them through a typed dependency the
    feature defines). `idempotency_lease` is the longest an idempotent call of this feature
    can run (a payment's whole gateway budget): the idempotency store holds keys at least
    that long, so a key is not taken over while its first request still works.
    """

    state: Mapping[str, Any] = field(default_factory=dict)
    idempotency_lease: timedelta | None = None


Resources = Callable[[ResourceContext], AbstractAsyncContextManager[FeatureResources]]
"""An async context manager factory: opened on the lifespan's exit stack after the core
resources, closed before them (so a feature's sockets hear "going away" first)."""


@dataclass(frozen=True, slots=True)
class Feature:
    """One feature's contributions; see the module docstring."""

    name: str
    router: APIRouter | None = None
    """Mounted under `/api/v1`, or at the root when `versioned` is false (health)."""
    versioned: bool = True
    requires: tuple[str, ...] = ()
    """Features that must be enabled too (the registry refuses to start without them)."""
    job_handlers: Mapping[str, JobHandler] = field(default_factory=dict)
    maintenance: tuple[Maintenance, ...] = ()
    openapi: tuple[Callable[[CoreSettings], OpenApiAdjuster], ...] = ()
    """Adjustments to the OpenAPI document that depend on the settings (upload limits)."""
    resources: Resources | None = None
