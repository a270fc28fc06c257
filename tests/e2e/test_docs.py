"""/docs in a real browser: offline, under Keel's own CSP, and usable end to end (SPEC §7).

What only a browser can show: that Swagger UI's scripts actually run under the page's
Content-Security-Policy (no inline script, no CDN), and that its OAuth2 password flow works
against Keel's token endpoint, so a developer can authorize and call a protected route.
"""

from __future__ import annotations

import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, Request, expect

LOOPBACK = "127.0.0.1"
# For a human to look at after a run (CI can keep it as an artifact); /tmp/keel-docs.png here.
SCREENSHOT = Path(tempfile.gettempdir()) / "keel-docs.png"
ME_PATH = "/api/v1/users/me"
TIMEOUT_MS = 15_000

# Runs before any of the page's own scripts. Violations are also logged to the console, but
# the event is the authoritative signal: it fires for every blocked resource, logged or not.
RECORD_CSP_VIOLATIONS = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (event) => {
  window.__cspViolations.push(
    `${event.effectiveDirective} blocked ${event.blockedURI || "(inline)"}`
    + ` at ${event.sourceFile}:${event.lineNumber}`
  );
});
"""


@dataclass
class PageWatch:
    """Everything the page did that the test must check it did not do."""

    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    foreign_requests: list[str] = field(default_factory=list)

    def on_console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.console_errors.append(f"{message.text} ({message.location})")

    def on_page_error(self, error: Exception) -> None:
        self.page_errors.append(str(error))

    def on_request(self, request: Request) -> None:
        # data: and blob: URLs never leave the browser; everything else must stay on loopback.
        parts = urlsplit(request.url)
        if parts.scheme not in {"data", "blob"} and parts.hostname != LOOPBACK:
            self.foreign_requests.append(request.url)


@dataclass(frozen=True)
class Credentials:
    email: str
    password: str


@pytest.fixture
def account(live_server: str) -> Credentials:
    """A user registered through the API, as a developer trying the docs would have."""
    credentials = Credentials(
        email=f"docs-{uuid.uuid4().hex[:12]}@example.com",
        password=f"a-long-passphrase-{uuid.uuid4().hex[:8]}",
    )
    response = httpx.post(
        f"{live_server}/api/v1/auth/register",
        json={
            "email": credentials.email,
            "password": credentials.password,
            "full_name": "Docs Tester",
        },
        timeout=10,
    )
    assert response.status_code == 201, response.text
    return credentials


@pytest.fixture
def watched_page(browser: Browser) -> Iterator[tuple[Page, PageWatch]]:
    """A fresh browser context whose every error, CSP violation and request is recorded."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(TIMEOUT_MS)
    context.add_init_script(RECORD_CSP_VIOLATIONS)
    watch = PageWatch()
    page = context.new_page()
    page.on("console", watch.on_console)
    page.on("pageerror", watch.on_page_error)
    page.on("request", watch.on_request)
    try:
        yield page, watch
    finally:
        context.close()


def test_docs_authorize_and_call_users_me(
    live_server: str, account: Credentials, watched_page: tuple[Page, PageWatch]
) -> None:
    page, watch = watched_page

    response = page.goto(f"{live_server}/docs")
    assert response is not None
    assert response.status == 200
    # The test only proves something if the page really is under Keel's strict policy.
    csp = response.headers.get("content-security-policy", "")
    assert "script-src 'self'" in csp, csp
    assert "unsafe-inline" not in csp.split("script-src", 1)[1].split(";", 1)[0], csp

    # Swagger UI rendered the spec: the title and the operation we are going to call.
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("Keel")
    operation = page.locator(".opblock.opblock-get").filter(
        has=page.locator(f'.opblock-summary-path[data-path="{ME_PATH}"]')
    )
    expect(operation).to_have_count(1)

    # Browsers fetch a page's icon on every visit, whenever they get round to it; without one
    # that loads, each visit logs a 404 console error. Checked here explicitly, so the outcome
    # does not depend on whether Chromium happened to ask before the end of the test.
    icon_url = page.evaluate(
        "document.querySelector('link[rel~=\"icon\"]')?.href"
        " ?? new URL('/favicon.ico', location.href).href"
    )
    assert urlsplit(icon_url).hostname == LOOPBACK, icon_url
    icon = page.request.get(icon_url)
    assert icon.status == 200, f"the docs page's icon {icon_url} answers {icon.status}"

    # Authorize through the OAuth2 password flow: Swagger UI posts the form to Keel's
    # /api/v1/auth/token and keeps the bearer token it gets back.
    page.locator(".auth-wrapper button.authorize").click()
    dialog = page.locator(".dialog-ux .modal-ux")
    expect(dialog).to_be_visible()
    dialog.locator("#oauth_username").fill(account.email)
    dialog.locator("#oauth_password").fill(account.password)
    with page.expect_response(lambda r: r.url.endswith("/api/v1/auth/token")) as token_call:
        dialog.locator(".auth-btn-wrapper button.authorize").click()
    assert token_call.value.status == 200, token_call.value.text()
    expect(dialog.get_by_role("heading", name="Authorized")).to_be_visible()
    expect(dialog.get_by_role("button", name="Remove authorization")).to_be_visible()
    dialog.get_by_role("button", name="Close").click()
    expect(dialog).to_be_hidden()

    # Call GET /api/v1/users/me from the docs, as the authorized user.
    operation.locator(".opblock-summary-control").click()
    operation.locator("button.try-out__btn").click()
    with page.expect_response(lambda r: urlsplit(r.url).path == ME_PATH) as me_call:
        operation.locator("button.execute").click()
    assert me_call.value.request.headers.get("authorization", "").startswith("Bearer ")
    assert me_call.value.status == 200, me_call.value.text()

    live = operation.locator(".live-responses-table .response")
    expect(live.locator(".response-col_status")).to_have_text("200")
    expect(live.locator(".response-col_description")).to_contain_text(account.email)

    page.screenshot(path=SCREENSHOT, full_page=True)

    violations = page.evaluate("window.__cspViolations")
    assert violations == [], f"Content-Security-Policy violations: {violations}"
    assert watch.console_errors == [], f"console errors: {watch.console_errors}"
    assert watch.page_errors == [], f"uncaught errors in the page: {watch.page_errors}"
    assert watch.foreign_requests == [], f"requests off loopback: {watch.foreign_requests}"
