"""What a process's shutdown did, in order: each engine disposed (by database name) and each
"stopped" line logged; observed through SQLAlchemy's own `engine_disposed` event. Shared by
the lifespan tests of core and of the features that hold resources."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from pydantic import SecretStr
from sqlalchemy import event
from sqlalchemy.engine import Engine, make_url

from keel.core.logging import configure_logging
from keel.settings import Settings
from tests.support.databases import REDIS_URL


@contextmanager
def recorded_timeline() -> Iterator[list[Any]]:
    """What happened, in order: each engine disposed (by URL) and each "stopped" line logged."""
    seen: list[Any] = []

    def disposed(engine: Engine) -> None:
        seen.append(("disposed", engine.url.database))

    class Stopped(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if isinstance(record.msg, dict) and record.msg.get("event") == "stopped":
                seen.append("stopped")

    configure_logging()  # as the app factory does: structlog lines reach stdlib handlers
    handler = Stopped()
    root = logging.getLogger()
    root.addHandler(handler)
    event.listen(Engine, "engine_disposed", disposed)
    try:
        yield seen
    finally:
        event.remove(Engine, "engine_disposed", disposed)
        root.removeHandler(handler)


def with_redis(settings: Settings) -> Settings:
    """The settings on the test Redis (a channel of their own), when there is one."""
    if REDIS_URL is None:
        return settings
    return settings.model_copy(
        update={"redis_url": SecretStr(REDIS_URL), "events_channel": f"t:{uuid.uuid4()}"}
    )


def database_name(url: str) -> str | None:
    return make_url(url).database
