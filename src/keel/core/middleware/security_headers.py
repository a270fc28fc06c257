"""Security headers every HTTP response carries.

The API's Content-Security-Policy forbids everything (JSON needs no scripts or frames). The
docs pages get a policy that lets Swagger UI run from Keel's own static files and nothing else:
no CDN, no inline script. HSTS is sent only over HTTPS (as seen after trusted proxy headers),
because browsers ignore it on plain HTTP and it would pin local development to TLS.
"""

from __future__ import annotations

API_CSP = "default-src 'none'; frame-ancestors 'none'"
DOCS_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; font-src 'self'; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
HSTS = "max-age=63072000; includeSubDomains"
COMMON = (
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),
    ("Referrer-Policy", "no-referrer"),
)
# Only documents can use these; JSON responses stay small (every header costs on the hot path).
DOCUMENT_ONLY = (
    ("Cross-Origin-Opener-Policy", "same-origin"),
    ("Permissions-Policy", "camera=(), microphone=(), geolocation=()"),
)
RawHeaders = tuple[tuple[bytes, bytes], ...]


def _encode(*pairs: tuple[str, str]) -> RawHeaders:
    return tuple((name.lower().encode(), value.encode()) for name, value in pairs)


# Encoded once: this runs on every response, so it appends prepared bytes.
API_HEADERS = _encode(*COMMON, ("Content-Security-Policy", API_CSP))
DOCS_HEADERS = _encode(*COMMON, *DOCUMENT_ONLY, ("Content-Security-Policy", DOCS_CSP))
HSTS_HEADER = _encode(("Strict-Transport-Security", HSTS))


def security_headers(path: str, *, https: bool, docs_prefixes: tuple[str, ...]) -> RawHeaders:
    """The headers a response to `path` must carry (appended by the request-context layer)."""
    headers = DOCS_HEADERS if path.startswith(docs_prefixes) else API_HEADERS
    return headers + HSTS_HEADER if https else headers
