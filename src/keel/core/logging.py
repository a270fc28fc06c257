"""Structured logging: JSON lines in production, readable console output in development.

Everything that logs through the standard library (uvicorn, SQLAlchemy, Alembic) goes through
the same structlog processors, so every line carries the request id and secrets are masked
no matter who wrote the line.

Writing is never done on the event loop: a line is rendered where it is logged (so it sees
the request's context variables) and handed to a background thread through a bounded queue,
which writes it to stdout. A slow or blocked stdout (a full pipe, a stalled log shipper)
then delays the log, not the requests; if the queue fills up, lines are dropped and counted
rather than waiting. Tracebacks are plain text or plain data, without local variables and of
bounded length: a rich, boxed rendering of a deep stack costs seconds of CPU per error.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import logging.handlers
import queue
import re
import sys
import traceback
from collections.abc import Mapping
from typing import Any, TextIO

import structlog
import structlog.tracebacks
from structlog.types import EventDict, Processor

from keel.core.request_id import get_request_id
from keel.core.tracing import add_trace_ids

SENSITIVE_KEYS = frozenset(
    {
        "password",
        "new_password",
        "current_password",
        "token",
        "access_token",
        "refresh_token",
        "authorization",
        "secret",
        "jwt_secret",
        "card",
        "card_number",
        "number",
        "cvc",
        "cookie",
        "set-cookie",
    }
)
REDACTED = "[redacted]"
HANDLER_NAME = "keel"


def add_request_id(_: Any, __: str, event_dict: EventDict) -> EventDict:
    request_id = get_request_id()
    if request_id is not None:
        event_dict.setdefault("request_id", request_id)
    return event_dict


def redact_secrets(_: Any, __: str, event_dict: EventDict) -> EventDict:
    """Mask values under sensitive keys, also one level down in dicts (e.g. logged headers)."""
    for key, value in list(event_dict.items()):
        if key.lower() in SENSITIVE_KEYS:
            event_dict[key] = REDACTED
        elif isinstance(value, Mapping):
            event_dict[key] = _redact_mapping(value)
    return event_dict


def _redact_mapping(value: Mapping[str, Any]) -> dict[str, Any]:
    return {k: (REDACTED if str(k).lower() in SENSITIVE_KEYS else v) for k, v in value.items()}


def _mask_query(match: re.Match[str]) -> str:
    pairs = match.group(1).split("&")
    return "?" + "&".join(f"{pair.partition('=')[0]}={REDACTED}" for pair in pairs)


# What the key-based redaction cannot see, because it sits inside text: a URL's query string
# (uvicorn logs `WebSocket /api/v1/ws?token=...`), a JWT or an Argon2 hash anywhere, and the
# DETAIL line PostgreSQL adds to an error (it quotes the failing row or key). Applied to the
# finished line, so it covers every logger, tracebacks included, in both renderings (the
# patterns stop at a quote or backslash, so a JSON line stays valid JSON).
_SCRUBS: tuple[tuple[re.Pattern[str], Any], ...] = (
    (re.compile(r"(?<=[\w/])\?([^\s\"'\\<>#]+)"), _mask_query),
    (re.compile(r"eyJ[\w-]{4,}\.[\w-]{4,}\.[\w-]+"), "[redacted-token]"),
    (
        re.compile(r"\$argon2(?:id|i|d)\$(?:v=\d+\$)?[\w=,]+\$[\w+/.-]+\$[\w+/.-]+"),
        "[redacted-hash]",
    ),
    (re.compile(r"(DETAIL: +)(?:[^\n\\\"]|\\[^n])*"), rf"\1{REDACTED}"),
)


def scrub_text(text: str) -> str:
    """Mask the secrets that can hide inside text (see `_SCRUBS`); also used for what leaves
    the process another way (error reports)."""
    for pattern, replacement in _SCRUBS:
        text = pattern.sub(replacement, text)
    return text


def scrub_rendered(_: Any, __: str, line: Any) -> Any:
    """The last step of every handler's chain: mask secrets in the rendered line itself."""
    return scrub_text(line) if isinstance(line, str) else line


def drop_color_message(_: Any, __: str, event_dict: EventDict) -> EventDict:
    """uvicorn attaches an ANSI-coloured duplicate of each message; it is noise in JSON."""
    event_dict.pop("color_message", None)
    return event_dict


MAX_TRACEBACK_FRAMES = 30
"""Frames kept per logged exception (JSON); the middle of a deeper stack is left out."""
MAX_TRACEBACK_LINES = 120
"""Lines kept per console traceback; the middle of a longer one is left out."""
WRITER_THREAD = "keel-log-writer"
QUEUE_SIZE = 10_000
"""Log lines waiting for the writer thread; beyond it new lines are dropped and counted."""

# Tracebacks as structured data, without each frame's local variables: locals are where
# passwords, tokens and card numbers live while a request runs, and redaction only sees the
# event's own keys.
_tracebacks_without_locals = structlog.processors.ExceptionRenderer(
    structlog.tracebacks.ExceptionDictTransformer(
        show_locals=False, max_frames=MAX_TRACEBACK_FRAMES, use_rich=False
    )
)


def bounded_plain_traceback(sio: TextIO, exc_info: Any) -> None:
    """The standard library's traceback text (never locals), at most MAX_TRACEBACK_LINES
    lines: the start (where it entered) and the end (where it failed) of a longer one."""
    lines = "".join(traceback.format_exception(*exc_info)).rstrip("\n").splitlines()
    if len(lines) > MAX_TRACEBACK_LINES:
        head = MAX_TRACEBACK_LINES // 4
        tail = MAX_TRACEBACK_LINES - head
        omitted = len(lines) - head - tail
        lines = [*lines[:head], f"  ... {omitted} lines left out ...", *lines[-tail:]]
    sio.write("\n" + "\n".join(lines))


class _DroppingQueueHandler(logging.handlers.QueueHandler):
    """Renders on the caller's thread, never waits for the writer: a full queue drops the
    line and counts it, and the count is logged as soon as there is room again."""

    def __init__(self, lines: queue.Queue[logging.LogRecord | None]) -> None:
        super().__init__(lines)
        self.lines = lines
        self.dropped = 0

    def enqueue(self, record: logging.LogRecord) -> None:
        if self.dropped and not self.lines.full():
            count, self.dropped = self.dropped, 0
            notice = logging.LogRecord(
                "keel.logging", logging.WARNING, __file__, 0, "log_lines_dropped", None, None
            )
            notice.count = count
            self._put(self.prepare(notice))
        self._put(record)

    def _put(self, record: logging.LogRecord) -> None:
        try:
            self.lines.put_nowait(record)
        except queue.Full:
            self.dropped += 1


_listener: logging.handlers.QueueListener | None = None
_lines: queue.Queue[logging.LogRecord | None] | None = None


def _stop_writer(within_seconds: float = 5.0) -> None:
    """Write what is queued and stop the writer thread (reconfiguration, process exit).

    Bounded: with a stdout that accepts nothing, waiting for the queue to drain would keep
    the process from ever exiting, so the (daemon) writer is given `within_seconds`.
    """
    global _listener, _lines
    listener, lines = _listener, _lines
    _listener = _lines = None
    thread = getattr(listener, "_thread", None)
    if listener is None or lines is None or thread is None:
        return
    with contextlib.suppress(queue.Full):
        lines.put(None, timeout=within_seconds)  # None is QueueListener's "stop" sentinel
    thread.join(within_seconds)
    listener._thread = None


atexit.register(_stop_writer)


def _shared_processors() -> list[Processor]:
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.ExtraAdder(),
        drop_color_message,
        add_request_id,
        redact_secrets,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]


class _StdoutWriter(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes each line to `sys.stdout` as it is when the line is written, not as it was at
    configuration: whoever replaces stdout (a test runner's capture, a daemon's redirection)
    gets the lines, and a replaced stream that was closed is never written to."""

    def __init__(self) -> None:
        super().__init__(sys.stdout)

    @property
    def stream(self) -> Any:
        return sys.stdout

    @stream.setter
    def stream(self, _value: Any) -> None:
        """The stream is always the current stdout; a stream set by logging is ignored."""


def configure_logging(*, level: str = "INFO", json: bool = False, trace_ids: bool = False) -> None:
    """Route structlog and stdlib logging to one stdout handler. Safe to call more than once.

    `trace_ids` (tracing on) adds the current trace and span ids to every line. It sits on the
    handler's formatter, which every line passes through and which is rebuilt on each call:
    loggers cache the structlog chain on first use, so a change there would miss them.
    """
    shared = _shared_processors()
    correlation: list[Processor] = [add_trace_ids] if trace_ids else []
    renderer: list[Processor]
    if json:
        renderer = [_tracebacks_without_locals, structlog.processors.JSONRenderer()]
    else:
        renderer = [
            structlog.dev.ConsoleRenderer(
                colors=sys.stdout.isatty(), exception_formatter=bounded_plain_traceback
            )
        ]

    structlog.configure(
        # filter_by_level first: an event below the level costs one check, not the chain.
        processors=[
            structlog.stdlib.filter_by_level,
            *shared,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,  # the chain never changes; renderers live on the handler
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            *correlation,
            *renderer,
            scrub_rendered,
        ],
    )
    global _listener, _lines
    _stop_writer()
    writer = _StdoutWriter()
    writer.setFormatter(logging.Formatter("%(message)s"))  # lines arrive rendered
    _lines = queue.Queue(QUEUE_SIZE)
    handler = _DroppingQueueHandler(_lines)
    handler.setFormatter(formatter)
    handler.set_name(HANDLER_NAME)
    _listener = logging.handlers.QueueListener(_lines, writer)
    _listener.start()
    thread = getattr(_listener, "_thread", None)
    if thread is not None:
        thread.name = WRITER_THREAD

    root = logging.getLogger()
    # Replace only our own handler: others (a test runner's capture, say) stay attached.
    root.handlers[:] = [h for h in root.handlers if h.get_name() != HANDLER_NAME]
    root.addHandler(handler)
    root.setLevel(level)
    # Servers and libraries log through the root handler; Keel writes its own access log.
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "sqlalchemy", "alembic"):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
    logging.getLogger("uvicorn.access").disabled = True
    # SQLAlchemy logs statements at INFO and result rows (password hashes) at DEBUG whenever
    # its logger is enabled, which KEEL_LOG_LEVEL=DEBUG on the root would do, and aiosqlite
    # logs every call with its parameters at DEBUG. SQL is seen through KEEL_DB_ECHO only
    # (which sets its own logger's level), never by accident.
    for name in ("sqlalchemy", "aiosqlite"):
        logging.getLogger(name).setLevel(logging.WARNING)


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    logger: structlog.stdlib.BoundLogger = structlog.stdlib.get_logger(name)
    return logger
