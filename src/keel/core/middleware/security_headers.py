"""Security headers on every HTTP response.

The API's Content-Security-Policy forbids everything (JSON needs no scripts or frames). The
docs pages get a policy that lets Swagger UI run from Keel's own static files and nothing else:
no CDN, no inline script. HSTS is sent only over HTTPS (as seen after trusted proxy headers),
because browsers ignore it on plain HTTP and it would pin local development to TLS.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

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


class SecurityHeadersMiddleware:
    def __init__(self, app: ASGIApp, *, docs_prefixes: tuple[str, ...]) -> None:
        self.app = app
        self.docs_prefixes = docs_prefixes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        extra = DOCS_HEADERS if scope["path"].startswith(self.docs_prefixes) else API_HEADERS
        if scope.get("scheme") == "https":
            extra += HSTS_HEADER

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", ()))
                present = {name.lower() for name, _ in headers}
                headers.extend(h for h in extra if h[0] not in present)
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)
