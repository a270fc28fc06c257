"""Settings: the one place configuration is read, validated and explained.

Everything comes from `KEEL_*` environment variables or a `.env` file. Development needs no
configuration at all; production refuses to start on an unsafe combination and names every
problem at once, so an operator fixes the deployment in one round instead of five.
"""

from __future__ import annotations

import importlib
import json
import secrets
from contextvars import ContextVar
from functools import lru_cache
from typing import Annotated, Any, Literal, TypeVar
from urllib.parse import unquote

from pydantic import (
    Field,
    PrivateAttr,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from keel.core.errors import ConfigError

Environment = Literal["development", "test", "production"]

_REPORTING: ContextVar[bool] = ContextVar("keel_settings_reporting", default=False)
"""Set while `diagnose_settings` builds settings: combination checks report instead of raising."""

SETTINGS_CLASS = "keel.settings:Settings"
"""The one settings class, composed of core's and every feature's (`module:name`). Core
imports it by this string, late, so that it names no feature; the composition lives in
`keel/settings.py`, which `keel new project` edits when it leaves a feature out."""

MIN_SECRET_BYTES = 32
MIN_METRICS_TOKEN_BYTES = 16
DEFAULT_SQLITE_URL = "sqlite+aiosqlite:///./var/keel.db"


def split_csv(value: Any) -> Any:
    """Accept `a,b,c` as well as a JSON list, which is what people write in `.env` files."""
    if isinstance(value, str):
        stripped = value.strip()
        if stripped.startswith("["):
            return json.loads(stripped)
        return [item.strip() for item in stripped.split(",") if item.strip()]
    return value


def parse_otlp_headers(value: str | None) -> dict[str, str]:
    """`key=value,key2=value2` (the OTEL_EXPORTER_OTLP_HEADERS format, values URL-encoded)."""
    headers: dict[str, str] = {}
    for position, item in enumerate((value or "").split(","), start=1):
        if not item.strip():
            continue
        name, sep, raw = item.partition("=")
        if not sep or not name.strip():
            # The entry itself is not quoted: it may well be a secret.
            raise ValueError(f"entry {position} is not `name=value`")
        headers[name.strip().lower()] = unquote(raw.strip())
    return headers


class CoreSettings(BaseSettings):
    """Every setting core reads, and the checks of them. Field docs double as the configuration
    reference. A feature's settings derive from this class in the feature's package, and
    `keel.settings.Settings` composes them all (docs/decisions.md, "Settings owned by their
    features")."""

    model_config = SettingsConfigDict(
        env_prefix="KEEL_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        frozen=True,
        use_attribute_docstrings=True,
    )

    environment: Environment = "development"
    app_name: str = "Keel"
    log_level: str = Field(default="INFO", pattern=r"^(DEBUG|INFO|WARNING|ERROR|CRITICAL)$")
    log_json: bool | None = None
    """JSON log lines; defaults to on in production only."""

    # HTTP serving
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    workers: int = Field(default=1, ge=1, le=64)
    graceful_shutdown_seconds: int = Field(default=30, ge=0, le=600)
    forwarded_allow_ips: str = "127.0.0.1"
    """Proxies trusted for X-Forwarded-For/Proto (uvicorn's forwarded_allow_ips)."""
    http_max_header_bytes: int = Field(default=64 * 1024, ge=1024, le=16 * 1024 * 1024)
    """Largest request head (request line and headers); 431 beyond it."""
    http_header_timeout_seconds: float = Field(default=10.0, gt=0, le=600)
    """Time a client has to send a whole request head before it is disconnected."""
    http_body_timeout_seconds: float = Field(default=30.0, gt=0, le=3600)
    """Longest silence between two chunks of a request body before closing."""
    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    cors_allow_credentials: bool = True
    allowed_hosts: Annotated[list[str], NoDecode] = Field(default_factory=lambda: ["*"])
    max_request_bytes: int = Field(default=1024 * 1024, ge=1024)
    """Largest request body outside uploads."""
    max_upload_bytes: int = Field(default=100 * 1024 * 1024, ge=1024)
    docs_enabled: bool | None = None
    """Serve /docs and /openapi.json; defaults to on outside production only."""

    # Database
    database_url: str = DEFAULT_SQLITE_URL
    db_pool_size: int = Field(default=10, ge=1, le=200)
    db_max_overflow: int = Field(default=0, ge=0, le=200)
    """Extra connections under bursts; each is closed again when returned."""
    db_pool_timeout_seconds: float = Field(default=5.0, gt=0)
    """Wait for a pooled connection before answering 503."""
    db_pool_recycle_seconds: int = Field(default=1800, ge=-1)
    db_pool_pre_ping: bool = False
    """Test each pooled connection before use (one extra round trip per request)."""
    db_connect_timeout_seconds: float = Field(default=5.0, gt=0, le=600)
    """Longest wait to open a PostgreSQL connection."""
    db_statement_timeout_seconds: float = Field(default=10.0, gt=0, le=3600)
    """Longest one SQL statement may take (PostgreSQL statement_timeout, and the same bound on the
    client for a server that went silent); beyond it the request is a 503.
    """
    db_echo: bool = False
    sqlite_busy_timeout_ms: int = Field(default=5000, ge=0)
    auto_migrate: bool | None = None
    """Upgrade the database on start-up; defaults to on outside production."""

    # Shared backends (optional in development)
    redis_url: SecretStr | None = None

    # Files: file://DIR (default), s3://BUCKET/PREFIX, or memory:// (tests only)
    storage_url: str = Field(
        default="file://./var/files", pattern=r"^(file://.+|s3://[^/]+(/.*)?|memory://.*)$"
    )
    storage_endpoint: str | None = None
    """S3-compatible endpoint URL (MinIO, moto, R2); AWS if unset."""
    storage_region: str = "us-east-1"
    storage_access_key_id: str | None = None
    storage_secret_access_key: SecretStr | None = None
    storage_connect_timeout_seconds: float = Field(default=5.0, gt=0, le=60)
    storage_timeout_seconds: float = Field(default=60.0, gt=0, le=3600)
    """Per storage request (one part of an upload)."""
    maintenance_seconds: float = Field(default=60, gt=0, le=86400)
    """How often each job-consuming process runs periodic upkeep (sweeping abandoned uploads)."""

    # Background jobs: in-process (embedded), or Redis Streams and `keel worker` processes
    job_broker: Literal["embedded", "redis"] | None = None
    """Defaults to redis when KEEL_REDIS_URL is set, else embedded."""
    job_queue_name: str = "keel:jobs"
    job_concurrency: int = Field(default=4, ge=1, le=256)
    """Jobs run at once per process."""
    job_max_attempts: int = Field(default=5, ge=1, le=50)
    job_retry_base_seconds: float = Field(default=2.0, gt=0, le=3600)
    job_retry_max_seconds: float = Field(default=300.0, gt=0, le=86400)
    job_lease_seconds: float = Field(default=60.0, ge=1, le=3600)
    """A running job whose worker stops renewing this lease is picked up again."""
    job_sweep_seconds: float = Field(default=5.0, gt=0, le=600)
    """How often due retries and lost jobs are sent."""

    # Security
    jwt_secret: SecretStr | None = None
    jwt_issuer: str = "keel"
    jwt_audience: str = "keel-api"
    access_token_minutes: int = Field(default=15, ge=1, le=30)
    refresh_token_days: int = Field(default=7, ge=1, le=7)
    password_hash_time_cost: int = Field(default=3, ge=1, le=20)
    password_hash_memory_kib: int = Field(default=65536, ge=1024, le=1048576)
    admin_password: SecretStr | None = None
    """Password `keel create-admin` uses instead of prompting."""

    # Rate limits ("N/second|minute|hour|day"); Redis-backed when KEEL_REDIS_URL is set
    rate_limit_enabled: bool = True
    rate_limit_default: str = "300/minute"
    rate_limit_login_ip: str = "20/minute"
    rate_limit_login_account: str = "5/minute"
    """Failed logins per account (successful ones do not count); then even the right password
    waits.
    """
    rate_limit_register_ip: str = "10/minute"
    rate_limit_refresh_ip: str = "30/minute"
    rate_limit_password_reset_ip: str = "10/minute"  # noqa: S105 - a name, not a secret
    """Password-reset requests per client address."""
    rate_limit_password_reset_account: str = "3/hour"  # noqa: S105 - a name, not a secret
    """Password-reset requests per email address (known or not: the answer is the same)."""
    rate_limit_account_token_ip: str = "30/minute"  # noqa: S105 - a name, not a secret
    """Presented reset and verification tokens per client address."""
    rate_limit_verify_resend_account: str = "3/hour"
    """Verification emails re-sent per account."""
    rate_limit_key_prefix: str = "keel"

    # Account lifecycle: password reset, email verification
    public_url: str = Field(
        default="http://127.0.0.1:8000", pattern=r"^https?://[^/?#\s]+(/[^?#\s]*)?$"
    )
    """Where people reach Keel (or its frontend): the base of every link in an email, e.g.
    `https://shop.example.com` makes `https://shop.example.com/reset-password?token=...`.
    """
    require_verified_email: bool | None = None
    """Refuse orders and uploads (403 EMAIL_NOT_VERIFIED) until the account's address is
    verified; defaults to on in production only.
    """
    password_reset_minutes: int = Field(default=60, ge=5, le=1440)
    """Life of a password-reset link."""
    email_verification_hours: int = Field(default=48, ge=1, le=720)
    """Life of a verification (and change-of-email) link."""

    # Email: the log sender unless KEEL_SMTP_HOST is set
    smtp_host: str | None = None
    smtp_port: int = Field(default=587, ge=1, le=65535)
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_from: str = "Keel <no-reply@keel.invalid>"
    smtp_starttls: bool = True
    """Upgrade with STARTTLS after connect."""
    smtp_tls: bool = False
    """Implicit TLS from the first byte (465)."""
    smtp_validate_certs: bool = True
    smtp_timeout_seconds: float = Field(default=10.0, gt=0)

    # Idempotency-Key replays (core/idempotency.py)
    idempotency_ttl_hours: int = Field(default=24, ge=1, le=720)

    # Lists
    pagination_exact_total_max: int = Field(default=10_000, ge=0, le=10_000_000)
    """A list's `total` is counted up to this many rows; beyond it PostgreSQL's estimate is
    given, with the header `X-Total-Estimated: true` (SQLite counts on)."""

    # Read cache (cashews): memory, or Redis when KEEL_REDIS_URL is set

    cache_ttl_seconds: int = Field(default=300, ge=1, le=86400)
    cache_key_prefix: str = "keel"

    # Events (the hub, core) fan out over Redis pub/sub when KEEL_REDIS_URL is set
    events_channel: str = "keel:events"

    # WebSocket serving, for every socket route (core/serving.py)
    ws_compression: bool = False
    """Accept permessage-deflate from WebSocket clients. Off: Keel's events are small, and
    compression costs every socket its zlib state and the fan-out CPU (docs/decisions.md)."""

    # Tracing: OpenTelemetry over OTLP/HTTP, off by default
    otel_enabled: bool = False
    otel_exporter_endpoint: str = Field(default="http://127.0.0.1:4318", pattern=r"^https?://[^/]+")
    """OTLP/HTTP collector base URL; traces go to <endpoint>/v1/traces."""
    otel_service_name: str = Field(default="keel", min_length=1)
    otel_sample_ratio: float = Field(default=1.0, ge=0, le=1)
    """Share of new traces kept; a caller's sampled trace is always continued."""
    otel_headers: SecretStr | None = None
    """Sent with every export: `name=value,...` (e.g. an API key)."""
    otel_export_timeout_seconds: float = Field(default=10.0, gt=0, le=60)
    otel_excluded_paths: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["/health", "/ready", "/metrics"]
    )
    """Paths never traced (probes and scrapes)."""

    # Operations
    metrics_enabled: bool | None = None
    """Serve /metrics; defaults to on outside production, and in production only when
    KEEL_METRICS_TOKEN is set.
    """
    metrics_token: SecretStr | None = None
    """When set, /metrics answers only `Authorization: Bearer <token>` (Prometheus'
    `authorization.credentials`); required for /metrics in production.
    """
    sentry_dsn: SecretStr | None = None
    """Report unexpected errors and failed jobs to Sentry (needs the `sentry` extra); off when
    unset, and then sentry-sdk is not even imported."""
    sentry_environment: str | None = None
    """The environment name on Sentry's events; defaults to KEEL_ENVIRONMENT."""
    ready_timeout_seconds: float = Field(default=2.0, gt=0, le=30)

    _secret_generated: bool = PrivateAttr(default=False)

    @field_validator(
        "cors_origins",
        "allowed_hosts",
        "otel_excluded_paths",
        mode="before",
    )
    @classmethod
    def _parse_lists(cls, value: Any) -> Any:
        return split_csv(value)

    @field_validator(
        "rate_limit_default",
        "rate_limit_login_ip",
        "rate_limit_login_account",
        "rate_limit_register_ip",
        "rate_limit_refresh_ip",
        "rate_limit_password_reset_ip",
        "rate_limit_password_reset_account",
        "rate_limit_account_token_ip",
        "rate_limit_verify_resend_account",
    )
    @classmethod
    def _parse_rate(cls, value: str) -> str:
        from limits import parse_many

        try:
            parse_many(value)
        except ValueError as exc:
            raise ValueError(f"not a rate limit like '5/minute': {value!r}") from exc
        return value

    @field_validator("otel_headers")
    @classmethod
    def _parse_otel_headers(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            parse_otlp_headers(value.get_secret_value())  # names the bad entry, not its value
        return value

    @model_validator(mode="after")
    def _combinations_are_possible(self) -> CoreSettings:
        if not _REPORTING.get():
            for problem in self.combination_problems():
                raise ValueError(problem)
        return self

    def combination_problems(self) -> list[str]:
        """Settings that cannot work together in any environment (a feature's class extends
        the list through `super()`)."""
        found: list[str] = []
        if self.job_broker == "redis" and self.redis_url is None:
            found.append("KEEL_JOB_BROKER=redis needs KEEL_REDIS_URL")
        return found

    @property
    def secret_was_generated(self) -> bool:
        """True when the JWT secret was made up at start-up (development only; warned about)."""
        return self._secret_generated

    @property
    def jobs_embedded(self) -> bool:
        """Jobs run inside this process (no Redis), rather than in `keel worker` processes."""
        if self.job_broker is None:
            return self.redis_url is None
        return self.job_broker == "embedded"

    @property
    def is_production(self) -> bool:
        return self.environment == "production"

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def json_logs(self) -> bool:
        return self.is_production if self.log_json is None else self.log_json

    @property
    def docs_served(self) -> bool:
        """Production does not publish its schema unless asked to (KEEL_DOCS_ENABLED=true)."""
        return (not self.is_production) if self.docs_enabled is None else self.docs_enabled

    @property
    def metrics_served(self) -> bool:
        """In production /metrics exists by default only behind its token."""
        if self.metrics_enabled is not None:
            return self.metrics_enabled
        return not self.is_production or self.metrics_token is not None

    @property
    def verified_email_required(self) -> bool:
        """Unverified accounts may not order or upload: by default in production only."""
        if self.require_verified_email is None:
            return self.is_production
        return self.require_verified_email

    @property
    def public_base_url(self) -> str:
        """`public_url` without a trailing slash, for joining paths onto."""
        return self.public_url.rstrip("/")

    @property
    def should_auto_migrate(self) -> bool:
        return (not self.is_production) if self.auto_migrate is None else self.auto_migrate

    def problems(self) -> list[str]:
        """Every reason this configuration is unsafe to run in production (empty if fine); a
        feature's class extends the list through `super()`."""
        if not self.is_production:
            return []
        found: list[str] = []
        secret = self.jwt_secret.get_secret_value() if self.jwt_secret else ""
        if not secret:
            found.append("KEEL_JWT_SECRET is not set")
        elif len(secret.encode()) < MIN_SECRET_BYTES:
            found.append(f"KEEL_JWT_SECRET is shorter than {MIN_SECRET_BYTES} bytes")
        metrics_token = self.metrics_token.get_secret_value() if self.metrics_token else ""
        if self.metrics_served and not metrics_token:
            found.append(
                "KEEL_METRICS_ENABLED is on without KEEL_METRICS_TOKEN (anonymous /metrics)"
            )
        elif metrics_token and len(metrics_token.encode()) < MIN_METRICS_TOKEN_BYTES:
            found.append(f"KEEL_METRICS_TOKEN is shorter than {MIN_METRICS_TOKEN_BYTES} bytes")
        if self.is_sqlite:
            found.append("KEEL_DATABASE_URL points at SQLite; use postgresql+asyncpg://")
        if "*" in self.cors_origins and self.cors_allow_credentials:
            found.append(
                "KEEL_CORS_ORIGINS is '*' while KEEL_CORS_ALLOW_CREDENTIALS is on; "
                "list the allowed origins"
            )
        if "*" in self.allowed_hosts:
            found.append("KEEL_ALLOWED_HOSTS is '*'; list the host names the service answers to")
        if self.redis_url is None and self.workers > 1:
            found.append(
                f"KEEL_WORKERS={self.workers} with in-memory jobs, cache, rate limits and "
                "events; set KEEL_REDIS_URL"
            )
        if self.jobs_embedded and self.workers > 1 and self.redis_url is not None:
            found.append(
                f"KEEL_JOB_BROKER is embedded with KEEL_WORKERS={self.workers}; "
                "use redis and `keel worker`"
            )
        if self.storage_url.startswith("memory://"):
            found.append("KEEL_STORAGE_URL is memory://, which loses every file on restart")
        if self.smtp_tls and self.smtp_starttls:
            found.append("KEEL_SMTP_TLS and KEEL_SMTP_STARTTLS are both on; choose one")
        if self.smtp_host and not self.smtp_validate_certs:
            found.append("KEEL_SMTP_VALIDATE_CERTS is off")
        if self.db_echo:
            found.append("KEEL_DB_ECHO is on, which logs every SQL statement and its parameters")
        return found

    def masked(self) -> dict[str, Any]:
        """The effective settings for display: secrets and URL passwords are hidden."""
        shown: dict[str, Any] = {}
        for name, value in self.model_dump().items():
            if isinstance(value, SecretStr):
                shown[name] = "**********" if value.get_secret_value() else ""
            elif name == "database_url":
                shown[name] = _mask_url_password(value)
            else:
                shown[name] = value
        return shown

    def display(self) -> dict[str, str]:
        """`masked()` as an operator reads it: what an unset or derived setting really is."""
        production = "production" if self.is_production else "outside production"
        derived = {
            "log_json": f"{str(self.json_logs).lower()} (default {production})",
            "auto_migrate": f"{str(self.should_auto_migrate).lower()} (default {production})",
            "require_verified_email": (
                f"{str(self.verified_email_required).lower()} (default {production})"
            ),
            "job_broker": (
                "embedded (no KEEL_REDIS_URL)" if self.jobs_embedded else "redis (KEEL_REDIS_URL)"
            ),
        }
        shown: dict[str, str] = {}
        for name, value in self.masked().items():
            if name == "jwt_secret" and self.secret_was_generated:
                shown[name] = "not set (a random one per process in development)"
            elif value is None:
                shown[name] = derived.get(name, "not set")
            elif isinstance(value, bool):
                shown[name] = str(value).lower()
            elif isinstance(value, list):
                shown[name] = ",".join(str(item) for item in value)
            else:
                shown[name] = str(value)
        return shown


def _mask_url_password(url: str) -> str:
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # an unparsable URL is reported by the database layer, not here
        return url


def _error_lines(exc: ValidationError) -> list[str]:
    return [
        f"KEEL_{str(err['loc'][0]).upper()}: {err['msg']}"
        if err["loc"]
        else str(err["msg"]).removeprefix("Value error, ")
        for err in exc.errors()
    ]


S = TypeVar("S", bound=CoreSettings)


@lru_cache(maxsize=1)
def settings_class() -> type[CoreSettings]:
    """The class `SETTINGS_CLASS` names, imported on first use."""
    module, _, name = SETTINGS_CLASS.partition(":")
    found = getattr(importlib.import_module(module), name)
    if not (isinstance(found, type) and issubclass(found, CoreSettings)):
        raise TypeError(f"{SETTINGS_CLASS} is not a CoreSettings class")
    return found


def settings_as(kind: type[S], settings: CoreSettings) -> S:
    """`settings` as a feature's settings class, checked: how a feature reads its own fields
    from the settings core passes around (as `CoreSettings`)."""
    if not isinstance(settings, kind):
        raise TypeError(
            f"settings are a {type(settings).__name__}, not a {kind.__name__}: build them with "
            f"build_settings() ({SETTINGS_CLASS}), which composes every feature's"
        )
    return settings


def build_settings(**overrides: Any) -> CoreSettings:
    """Build settings, turning every validation failure into one ConfigError that lists them."""
    kind = settings_class()
    try:
        settings = kind(**overrides)
    except ValidationError as exc:
        raise ConfigError(_error_lines(exc)) from None
    return _with_development_secret(settings)


def diagnose_settings(**overrides: Any) -> tuple[CoreSettings | None, list[str]]:
    """Every problem at once, for `keel check-config`: invalid values, impossible combinations
    and production problems. The settings returned hold the defaults in place of invalid
    values (so the rest can still be judged); None only if even that cannot be built."""
    kind = settings_class()
    token = _REPORTING.set(True)
    found: list[str] = []
    try:
        try:
            settings = kind(**overrides)
        except ValidationError as exc:
            found += _error_lines(exc)
            invalid = {str(err["loc"][0]) for err in exc.errors() if err["loc"]}
            defaults = {
                name: kind.model_fields[name].get_default(call_default_factory=True)
                for name in invalid
                if name in kind.model_fields
            }
            try:
                settings = kind(**{**overrides, **defaults})
            except ValidationError:
                return None, found
    finally:
        _REPORTING.reset(token)
    found += settings.combination_problems()
    found += settings.problems()
    return _with_development_secret(settings), found


def _with_development_secret(settings: S) -> S:
    if settings.jwt_secret is None and not settings.is_production:
        # A fresh secret per process: tokens die with the process, which is fine for development.
        settings = settings.model_copy(update={"jwt_secret": SecretStr(secrets.token_urlsafe(48))})
        settings._secret_generated = True
    return settings


def ensure_safe(settings: S) -> S:
    problems = settings.problems()
    if problems:
        raise ConfigError(problems)
    return settings


@lru_cache(maxsize=1)
def get_settings() -> CoreSettings:
    """The process-wide settings, read from the environment once."""
    return build_settings()
