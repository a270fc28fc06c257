"""The app factory and the ASGI `app` (`uvicorn keel.main:app`, `fastapi run`)."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.telemetry import TelemetryConfig
from prometheus_client import CollectorRegistry

from keel import __version__
from keel.core.config import CoreSettings, ensure_safe, get_settings
from keel.core.docs import install_docs
from keel.core.exception_handlers import register_exception_handlers
from keel.core.jobs.handlers import JobHandlers
from keel.core.lifespan import build_lifespan
from keel.core.logging import configure_logging, get_logger
from keel.core.metrics import HttpMetrics, PoolMetrics, install_metrics_endpoint
from keel.core.middleware import install_middleware
from keel.core.middleware.body_limit import upload_prefixes
from keel.core.openapi import adjust_openapi, document_error_statuses, operation_id
from keel.core.routers import include_flat
from keel.core.schemas import ERROR_RESPONSES
from keel.core.tracing import instrument_app
from keel.features.registry import features, maintenance, resources
from keel.features.registry import job_handlers as enabled_job_handlers

log = get_logger(__name__)


API_DESCRIPTION = (
    "Every error has one body: `{error: {code, message, details, request_id}}`. "
    "No request string may contain NUL (U+0000): such a value is a 422 naming the field. "
    "Integers are bounded as each schema states; money is integer minor units."
)


API_PREFIX = "/api/v1"
"""Where every versioned feature's router is mounted (health is at the root)."""

NO_NATIVE_TELEMETRY: TelemetryConfig = {"tracing": False, "metrics": False, "logs": False}


def create_app(
    settings: CoreSettings | None = None, *, job_handlers: JobHandlers | None = None
) -> FastAPI:
    """Build a fully wired app. Refuses (ConfigError) on an unsafe production configuration.

    `job_handlers` defaults to every enabled feature's (`registry.job_handlers()`); tests
    add their own.
    """
    settings = ensure_safe(settings or get_settings())
    configure_logging(
        level=settings.log_level, json=settings.json_logs, trace_ids=settings.otel_enabled
    )
    if settings.secret_was_generated:
        log.warning(
            "jwt_secret_generated",
            hint="set KEEL_JWT_SECRET; tokens will not survive a restart",
        )

    registry = CollectorRegistry(auto_describe=True)
    pool_metrics = PoolMetrics(registry) if settings.metrics_served else None
    http_metrics = HttpMetrics(registry) if settings.metrics_served else None
    app = FastAPI(
        # Keel traces through its own instrumentation (core/tracing.py); FastAPI's native
        # telemetry would otherwise look up the global OpenTelemetry providers (and read the
        # environment) on every request only to find them unset.
        telemetry=NO_NATIVE_TELEMETRY,
        title=settings.app_name,
        version=__version__,
        description=API_DESCRIPTION,
        lifespan=build_lifespan(
            settings,
            pool_metrics,
            enabled_job_handlers() if job_handlers is None else job_handlers,
            maintenance(),
            resources(),
        ),
        docs_url=None,
        redoc_url=None,
        openapi_url="/openapi.json" if settings.docs_served else None,
        responses=ERROR_RESPONSES,
        generate_unique_id_function=operation_id,
    )
    register_exception_handlers(app)
    enabled = features()
    versioned = [f.router for f in enabled if f.router is not None and f.versioned]
    install_middleware(
        app, settings, http_metrics, upload_prefixes=upload_prefixes(API_PREFIX, versioned)
    )
    if settings.metrics_served:
        token = settings.metrics_token
        install_metrics_endpoint(app, registry, token.get_secret_value() if token else None)

    for feature in enabled:
        if feature.router is not None and not feature.versioned:
            include_flat(app, feature.router)  # the probes: one match, no walk (core/routers.py)
    for router in versioned:
        # Each straight into the app: FastAPI builds every route's dependencies again at each
        # level of inclusion, and one level fewer halves what building an app costs.
        app.include_router(router, prefix=API_PREFIX)
    adjustments = [adjust(settings) for feature in enabled for adjust in feature.openapi]
    adjust_openapi(app, *adjustments, document_error_statuses)
    if settings.docs_served:
        install_docs(app)
    instrument_app(app, settings)  # nothing at all unless KEEL_OTEL_ENABLED
    return app


def __getattr__(name: str) -> FastAPI:
    """`keel.main:app` is built on first access, not at import, so importing is side-effect free."""
    if name == "app":
        application = create_app()
        globals()["app"] = application
        return application
    raise AttributeError(name)
