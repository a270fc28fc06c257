"""The middleware stack, all pure ASGI, in one place so its order is deliberate and visible.

A layer with nothing to do for a scope (gzip, the body limit and the rate limit for a
WebSocket; trusted hosts for an allowed host) hands it on from a plain `def __call__` that
returns the next app's awaitable, instead of awaiting it in a coroutine of its own: such a
coroutine's frame would stay alive as long as the connection, and an idle WebSocket is held
for hours (bench/README.md, WebSocket memory per idle connection).
"""

from __future__ import annotations

from collections.abc import Sequence

from fastapi import FastAPI
from starlette.middleware.cors import CORSMiddleware

from keel.core.config import CoreSettings
from keel.core.docs import DOCS_PATH, STATIC_PREFIX
from keel.core.metrics import METRICS_PATH, HttpMetrics
from keel.core.middleware.body_limit import BodySizeLimitMiddleware, UploadLimit
from keel.core.middleware.gzip import GZipMiddleware
from keel.core.middleware.request_context import RequestContextMiddleware
from keel.core.middleware.trusted_hosts import TrustedHostMiddleware
from keel.core.operations import PROBE_PATHS
from keel.core.ratelimit import DefaultRateLimitMiddleware
from keel.core.request_id import REQUEST_ID_HEADER

MULTIPART_OVERHEAD_BYTES = 64 * 1024
"""Room for the multipart envelope around an upload of exactly KEEL_MAX_UPLOAD_BYTES."""


def install_middleware(
    app: FastAPI,
    settings: CoreSettings,
    metrics: HttpMetrics | None,
    *,
    upload_prefixes: Sequence[str] = (),
) -> None:
    """Add middleware innermost first (Starlette wraps each new one around the previous).

    `upload_prefixes` are where bodies are file uploads (the features' `UploadRouter`s, as
    `keel.api` collects them): they get the upload limit instead of the request limit.

    Resulting order, outermost first, and why:
      1. request context - request id, security headers, access log, metrics and the
                           last-resort 500: outermost, so every later layer's log lines carry
                           the id, every response (refusals and 500s included) carries the
                           headers, and the log and metrics see the final status and duration;
      2. trusted hosts   - cheap refusal of foreign Host headers before any work;
      3. rate limit      - the global per-client limit, before any real work is done;
      4. CORS            - answers preflights before body limits or handlers run;
      5. gzip            - compresses what the app produced (JSON above 1 KiB);
      6. body size limit - closest to the app, guarding the body as the app reads it.
    """
    app.add_middleware(
        BodySizeLimitMiddleware,
        max_bytes=settings.max_request_bytes,
        overrides=dict.fromkeys(
            upload_prefixes, UploadLimit(settings.max_upload_bytes, MULTIPART_OVERHEAD_BYTES)
        ),
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
    app.add_middleware(DefaultRateLimitMiddleware)
    scrape = {METRICS_PATH} if settings.metrics_token is not None else set()
    app.add_middleware(
        TrustedHostMiddleware,
        allowed_hosts=settings.allowed_hosts,
        exempt_paths=PROBE_PATHS | scrape,
    )
    app.add_middleware(
        RequestContextMiddleware, metrics=metrics, docs_prefixes=(DOCS_PATH, STATIC_PREFIX)
    )
