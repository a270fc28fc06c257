"""The middleware stack, all pure ASGI, in one place so its order is deliberate and visible."""

from __future__ import annotations

import uuid

from asgi_correlation_id import CorrelationIdMiddleware
from fastapi import FastAPI
from starlette.middleware.cors import CORSMiddleware

from keel.core.config import Settings
from keel.core.docs import DOCS_PATH, STATIC_PREFIX
from keel.core.metrics import HttpMetrics
from keel.core.middleware.body_limit import BodySizeLimitMiddleware
from keel.core.middleware.gzip import GZipMiddleware
from keel.core.middleware.security_headers import SecurityHeadersMiddleware
from keel.core.middleware.telemetry import RequestTelemetryMiddleware
from keel.core.middleware.trusted_hosts import TrustedHostMiddleware

REQUEST_ID_HEADER = "X-Request-ID"


def is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def new_request_id() -> str:
    return str(uuid.uuid4())


def install_middleware(app: FastAPI, settings: Settings, metrics: HttpMetrics | None) -> None:
    """Add middleware innermost first (Starlette wraps each new one around the previous).

    Resulting order, outermost first, and why:
      1. request id       - first, so every later layer's logs and every response carry it;
      2. security headers - on every response, including refusals and 500s from inside;
      3. telemetry        - access log, metrics and the last-resort 500: sees the final status
                            and duration of everything inside, and catches what they raise;
      4. trusted hosts    - cheap refusal of foreign Host headers before any work;
      5. CORS             - answers preflights before body limits or handlers run;
      6. gzip             - compresses what the app produced (JSON above 1 KiB);
      7. body size limit  - closest to the app, guarding the body as the app reads it.
    """
    app.add_middleware(
        BodySizeLimitMiddleware,
        max_bytes=settings.max_request_bytes,
        overrides={"/api/v1/files": settings.max_upload_bytes},
    )
    app.add_middleware(GZipMiddleware, minimum_size=1024, compresslevel=6)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_credentials=settings.cors_allow_credentials,
            allow_methods=["*"],
            allow_headers=["*"],
            expose_headers=[REQUEST_ID_HEADER, "Retry-After", "Location"],
        )
    app.add_middleware(TrustedHostMiddleware, allowed_hosts=settings.allowed_hosts)
    app.add_middleware(RequestTelemetryMiddleware, metrics=metrics)
    app.add_middleware(SecurityHeadersMiddleware, docs_prefixes=(DOCS_PATH, STATIC_PREFIX))
    app.add_middleware(
        CorrelationIdMiddleware,
        header_name=REQUEST_ID_HEADER,
        generator=new_request_id,
        validator=is_uuid,
        transformer=None,
        update_request_header=False,  # the id is read from the context, not the header
    )
