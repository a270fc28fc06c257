"""A pytest plugin: no secret the suite creates may appear in any log line the suite writes.

While the run lasts, every access and refresh token Keel issues (and the JWT secret that
signed it), every one-time token it emails (password reset, verification), every password
it hashes and every hash it makes, and every card number a gateway is asked to charge, is
recorded (by wrapping `TokenService.issue` and `one_time`, `PasswordHasher.hash` and the
gateways' `charge`; what
they return is untouched). A handler on the root logger renders every record exactly as
Keel's own handler writes it (same formatter, so the redaction that matters is the one
production runs) and keeps the line. When the session ends the lines are searched for the
secrets; any found fails the run, as an error in the teardown of the session's last test.

Each pytest-xdist worker is a session of its own: it records the secrets its own tests
create and checks the lines its own tests wrote, which is all it can see (a worker never
shares a process, a database or a log with another).

Registered by tests/conftest.py; `pytest -p tests.support.leak_scan` loads it elsewhere
(tests/test_log_leaks.py runs an inner session with a planted leak that way).
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import wraps
from typing import Any

import pytest

from keel.core.logging import HANDLER_NAME
from keel.core.security.passwords import PasswordHasher
from keel.core.security.tokens import TokenService

KEY_LENGTH = 10
"""Secrets are found by their last characters: one set lookup per position in a line."""
MIN_SECRET_LENGTH = KEY_LENGTH
"""Shorter "secrets" (`x`, a 3-digit CVC) would match ordinary text; tests never use them
for real accounts (passwords are at least 8 characters and the factory makes 16)."""
REPORTED = 20


@dataclass(frozen=True)
class Leak:
    kind: str
    secret: str
    line: str

    def describe(self) -> str:
        """The line with the secret shown as its kind and first characters only."""
        masked = self.line.replace(self.secret, f"<{self.kind} {self.secret[:4]}...>")
        return f"{self.kind} in: {masked[:400]}"


class LeakScanner(logging.Handler):
    """Records secrets, and every log line as Keel's handler renders it; finds the first
    in the second."""

    def __init__(self) -> None:
        super().__init__(level=logging.NOTSET)
        self.set_name("keel-leak-scan")
        self._secrets: dict[str, dict[str, str]] = {}  # last characters -> {secret: kind}
        self._lines: list[str] = []
        self._guard = threading.Lock()

    def record_secret(self, kind: str, value: str) -> None:
        if len(value) < MIN_SECRET_LENGTH:
            return
        with self._guard:
            self._secrets.setdefault(value[-KEY_LENGTH:], {}).setdefault(value, kind)

    @property
    def secrets(self) -> int:
        return sum(len(found) for found in self._secrets.values())

    def recorded(self) -> dict[str, str]:
        """Every secret recorded, and its kind."""
        with self._guard:
            return {
                secret: kind for found in self._secrets.values() for secret, kind in found.items()
            }

    @property
    def lines(self) -> int:
        return len(self._lines)

    def lines_containing(self, text: str) -> list[str]:
        with self._guard:
            return [line for line in self._lines if text in line]

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self._render(record)
        except Exception:  # a record Keel's formatter cannot render is not ours to judge
            line = str(record.msg)
        with self._guard:
            self._lines.append(line)

    def _render(self, record: logging.LogRecord) -> str:
        keel = next((h for h in logging.getLogger().handlers if h.get_name() == HANDLER_NAME), None)
        if keel is None or keel.formatter is None:
            return logging.Formatter().format(record)
        return keel.formatter.format(record)

    def leaks(self) -> list[Leak]:
        with self._guard:
            secrets, lines = dict(self._secrets), list(self._lines)
        found: list[Leak] = []
        seen: set[tuple[str, int]] = set()
        for number, line in enumerate(lines):
            for start in range(len(line) - KEY_LENGTH + 1):
                candidates = secrets.get(line[start : start + KEY_LENGTH], {})
                for secret, kind in candidates.items():
                    if (secret, number) not in seen and secret in line:
                        seen.add((secret, number))
                        found.append(Leak(kind, secret, line))
        return found


def _recording(
    scanner: LeakScanner, original: Callable[..., Any], take: Callable[[Any, Any, Any], None]
) -> Callable[..., Any]:
    if inspect.iscoroutinefunction(original):

        @wraps(original)
        async def async_wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
            result = await original(self, *args, **kwargs)
            take(args, kwargs, result)
            return result

        return async_wrapper

    @wraps(original)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        result = original(self, *args, **kwargs)
        take(args, kwargs, result)
        return result

    return wrapper


def instrument(scanner: LeakScanner, monkeypatch: pytest.MonkeyPatch) -> None:
    """Wrap the places secrets are born so that each is recorded as it is made."""

    def token(_: Any, __: Any, issued: Any) -> None:
        scanner.record_secret("token", issued.token)

    original_issue = TokenService.issue

    def issue(self: TokenService, *args: Any, **kwargs: Any) -> Any:
        scanner.record_secret("jwt_secret", self._secret)
        return original_issue(self, *args, **kwargs)

    def password(args: Any, kwargs: Any, hashed: str) -> None:
        scanner.record_secret("password", args[0] if args else kwargs["password"])
        scanner.record_secret("hash", hashed)

    def card(args: Any, kwargs: Any, _: Any) -> None:
        request = args[0] if args else kwargs["request"]
        scanner.record_secret("card", request.card.number)

    def one_time(_: Any, __: Any, made: str) -> None:
        scanner.record_secret("one_time_token", made)

    monkeypatch.setattr(TokenService, "issue", _recording(scanner, issue, token))
    monkeypatch.setattr(
        TokenService, "one_time", _recording(scanner, TokenService.one_time, one_time)
    )
    monkeypatch.setattr(PasswordHasher, "hash", _recording(scanner, PasswordHasher.hash, password))
    if importlib.util.find_spec("keel.features.payments") is None:
        return  # a project without payments has no card numbers to watch for
    gateways = importlib.import_module("keel.features.payments.gateway")
    for gateway in (gateways.SandboxGateway, gateways.HttpGateway):
        monkeypatch.setattr(gateway, "charge", _recording(scanner, gateway.charge, card))


@pytest.fixture(scope="session", autouse=True)
def log_leak_scan() -> Iterator[LeakScanner]:
    """The whole session's scanner; its teardown is the check."""
    scanner = LeakScanner()
    root = logging.getLogger()
    with pytest.MonkeyPatch.context() as monkeypatch:
        instrument(scanner, monkeypatch)
        root.addHandler(scanner)
        try:
            yield scanner
        finally:
            root.removeHandler(scanner)
    leaks = scanner.leaks()
    if leaks:
        report = "\n".join(leak.describe() for leak in leaks[:REPORTED])
        raise AssertionError(
            f"{len(leaks)} secret(s) created by the suite appeared in its log output "
            f"({scanner.lines} lines, {scanner.secrets} secrets checked):\n{report}"
        )
