"""Optional error reporting to Sentry, for teams that run it (`KEEL_SENTRY_DSN`).

Off by default, and then `sentry_sdk` is never imported. When on, Keel reports what it
cannot answer for itself: an unexpected exception behind a 500 and a job that failed for
good (retries are not errors yet). Each report carries the request id (or the job id) and the
release, so an event leads to its log lines.

What leaves the process is decided here, not by the SDK's defaults: no request bodies, no
cookies, no query strings (a signed upload URL is a credential), only a few harmless
headers, no local variables, no log breadcrumbs, and every remaining text scrubbed with the
log's own patterns (tokens, hashes, query strings) plus card-number-like digit runs. The
scrubber (`scrub_event`) runs as `before_send` and is tested on its own.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, cast

from keel import __version__
from keel.core.config import CoreSettings
from keel.core.errors import ConfigError
from keel.core.logging import REDACTED, get_logger, scrub_text
from keel.core.request_id import get_request_id

if TYPE_CHECKING:
    from sentry_sdk.types import Event, Hint

log = get_logger(__name__)

KEPT_HEADERS = frozenset({"user-agent", "content-type", "content-length", "accept", "host"})
"""The only request headers a report keeps; every other one (Authorization, Cookie, an API
key under any name) is dropped, not masked."""

_CARD_LIKE = re.compile(r"(?<![\w-])(?:\d[ -]?){12,18}\d(?![\w-])")
"""13 to 19 digits, grouped by spaces or hyphens, standing alone (not part of a UUID or a
longer token)."""
NOT_SCRUBBED = frozenset({"tags", "event_id", "release", "environment", "timestamp"})
"""Fields Keel itself fills with ids and names: scrubbing them would only garble them."""
FLUSH_SECONDS = 2.0


@contextmanager
def error_reporting(settings: CoreSettings) -> Iterator[None]:
    """Report errors to Sentry for the duration of the block, when a DSN is configured."""
    if settings.sentry_dsn is None:
        yield
        return
    try:
        import sentry_sdk
        from sentry_sdk.integrations.fastapi import FastApiIntegration
        from sentry_sdk.integrations.starlette import StarletteIntegration
    except ImportError:  # pragma: no cover - the dev environment always has it
        raise ConfigError(
            ["KEEL_SENTRY_DSN is set but sentry-sdk is not installed: install keel[sentry]"]
        ) from None

    sentry_sdk.init(
        dsn=settings.sentry_dsn.get_secret_value(),
        release=f"keel@{__version__}",
        environment=settings.sentry_environment or settings.environment,
        # Keel captures what it reports (see `report_exception`); the SDK's own hooks would
        # add log breadcrumbs and duplicate events. The web integrations only name the
        # transaction after the route.
        default_integrations=False,
        auto_enabling_integrations=False,
        integrations=[
            StarletteIntegration(failed_request_status_codes=set()),
            FastApiIntegration(failed_request_status_codes=set()),
        ],
        max_request_body_size="never",
        include_local_variables=False,
        max_breadcrumbs=0,
        before_send=scrub_event,
    )
    log.info("error_reporting_enabled")
    try:
        yield
    finally:
        client = sentry_sdk.get_client()
        client.flush(timeout=FLUSH_SECONDS)
        client.close(timeout=FLUSH_SECONDS)


def report_exception(exc: BaseException, **tags: str) -> None:
    """Send `exc` to Sentry with the request id and `tags`; nothing at all when it is off."""
    sentry_sdk = sys.modules.get("sentry_sdk")  # never imported here: only `error_reporting`
    if sentry_sdk is None or not sentry_sdk.get_client().is_active():
        return
    with sentry_sdk.new_scope() as scope:
        request_id = get_request_id()
        if request_id is not None:
            scope.set_tag("request_id", request_id)
        for name, value in tags.items():
            scope.set_tag(name, value)
        scope.capture_exception(exc)


def scrub_event(event: Event, _hint: Hint | None = None) -> Event:
    """`before_send`: keep only what helps find the bug and cannot carry a secret."""
    data = cast("dict[str, Any]", event)
    request = data.get("request")
    if isinstance(request, dict):
        for part in ("data", "cookies", "query_string", "env"):
            request.pop(part, None)
        headers = request.get("headers")
        if isinstance(headers, dict):
            request["headers"] = {
                name: value for name, value in headers.items() if name.lower() in KEPT_HEADERS
            }
        if isinstance(request.get("url"), str):
            request["url"] = request["url"].split("?", 1)[0]
    data.pop("user", None)
    data.pop("breadcrumbs", None)
    return cast(
        "Event",
        {
            key: value if key in NOT_SCRUBBED else _scrub_strings(value)
            for key, value in data.items()
        },
    )


def _scrub_strings(value: Any) -> Any:
    if isinstance(value, str):
        return _CARD_LIKE.sub(REDACTED, scrub_text(value))
    if isinstance(value, dict):
        return {key: _scrub_strings(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_scrub_strings(item) for item in value]
    return value
