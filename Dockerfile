# Keel's production image: a build stage that installs the locked dependencies with uv, and
# a slim runtime stage that receives only the finished virtual environment.
#
#   docker build -t keel .
#   docker run --rm keel keel check-config          # any `keel` command works the same way
#
# Needs BuildKit (the default builder since Docker 23) for the cache mounts. docs/deployment.md
# explains the choices; docker-compose.yml runs this image with PostgreSQL and Redis.

# Both stages must use the same interpreter at the same path: the virtual environment copied
# from the build stage points at it. Pin a digest (python:3.12-slim@sha256:…) for builds that
# must be reproducible to the byte.
ARG PYTHON_IMAGE=python:3.12-slim


# ---------------------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS builder

# The uv that uv.lock's dev group locks (keep the two in step).
ARG UV_VERSION=0.13.9

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_ROOT_USER_ACTION=ignore \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON=/usr/local/bin/python3 \
    UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/app/.venv

RUN pip install "uv==${UV_VERSION}"

WORKDIR /app

# 1. Dependencies only: this layer is rebuilt when pyproject.toml or uv.lock change, not when
#    the code does. --locked installs exactly what uv.lock says and, unlike --frozen, fails
#    when uv.lock no longer matches pyproject.toml instead of installing the stale lock.
COPY pyproject.toml uv.lock ./
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --locked --no-dev --no-editable --no-install-project

# 2. The project itself, installed as a regular (non-editable) wheel into the same
#    environment, so the runtime stage needs nothing from the source tree. README.md is the
#    package's long description, which the wheel build reads.
COPY README.md ./
COPY src ./src
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --locked --no-dev --no-editable


# ---------------------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime

# A fixed, unprivileged uid/gid: Kubernetes' runAsNonRoot can verify a numeric USER, and
# volumes can be prepared for it (chown 10001:10001).
ARG KEEL_UID=10001
ARG KEEL_GID=10001

LABEL org.opencontainers.image.title="keel" \
      org.opencontainers.image.description="Keel: a production-grade FastAPI shop backend" \
      org.opencontainers.image.licenses="MIT"

# PATH puts the environment's `keel` (and python) first. The image defaults to production, so
# a deployment that forgets its configuration refuses to start and lists what is missing
# instead of quietly running on development defaults; `-e KEEL_ENVIRONMENT=development` runs
# it on SQLite for a quick look.
ENV PATH="/app/.venv/bin:${PATH}" \
    VIRTUAL_ENV=/app/.venv \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONFAULTHANDLER=1 \
    KEEL_ENVIRONMENT=production \
    KEEL_HOST=0.0.0.0 \
    KEEL_PORT=8000

# The code is owned by root and read-only for the service; only var/ (SQLite in development,
# `file://` storage, e.g. a volume at /app/var/files) is the service's to write.
RUN groupadd --system --gid "${KEEL_GID}" keel \
    && useradd --system --uid "${KEEL_UID}" --gid keel --no-create-home \
        --home-dir /nonexistent --shell /usr/sbin/nologin keel \
    && mkdir -p /app/var/files \
    && chown -R "${KEEL_UID}:${KEEL_GID}" /app/var

WORKDIR /app
COPY --from=builder /app/.venv /app/.venv

USER ${KEEL_UID}:${KEEL_GID}

EXPOSE 8000

# Liveness through the standard library (the slim image has no curl). The operations
# endpoints are exempt from the Host allow-list, so 127.0.0.1 is fine. Any non-2xx answer or
# connection error raises, i.e. exits 1 (unhealthy).
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request as r; r.urlopen('http://127.0.0.1:%s/health' % os.environ.get('KEEL_PORT', '8000'), timeout=4)"]

# One server process per container by default (scale with replicas); KEEL_WORKERS=N runs N
# uvicorn workers, whose /metrics are then aggregated. `docker run … keel worker`,
# `keel migrate upgrade` and every other command replace this default.
CMD ["keel", "serve", "--host", "0.0.0.0"]
