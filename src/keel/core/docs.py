"""Interactive API docs served entirely by Keel: no CDN, no inline script.

Swagger UI's files come from the `fastapi-offline` package (it ships a current Swagger UI that
renders OpenAPI 3.1); the page and its boot script are Keel's own, so the docs work offline
and under a Content-Security-Policy without `unsafe-inline` scripts. (Only the OAuth2
password flow is offered, so Swagger's inline-script OAuth2 redirect page is not served.)
"""

from __future__ import annotations

from html import escape
from pathlib import Path

import fastapi_offline
from fastapi import FastAPI
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

SWAGGER_ASSETS = Path(fastapi_offline.__file__).parent / "static"
KEEL_ASSETS = Path(__file__).parent.parent / "static"
DOCS_PATH = "/docs"
STATIC_PREFIX = "/static"


def _docs_page(title: str, openapi_url: str) -> str:
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(title)} - API docs</title>
<link rel="icon" type="image/png" href="{STATIC_PREFIX}/swagger/favicon.png">
<link rel="stylesheet" href="{STATIC_PREFIX}/swagger/swagger-ui.css">
</head>
<body>
<div id="swagger-ui"></div>
<script src="{STATIC_PREFIX}/swagger/swagger-ui-bundle.js"></script>
<script src="{STATIC_PREFIX}/keel/swagger-init.js"
        data-openapi-url="{escape(openapi_url)}"></script>
</body>
</html>"""


def install_docs(app: FastAPI) -> None:
    page = _docs_page(app.title, app.openapi_url or "/openapi.json")
    app.mount(f"{STATIC_PREFIX}/swagger", StaticFiles(directory=SWAGGER_ASSETS), name="swagger")
    app.mount(f"{STATIC_PREFIX}/keel", StaticFiles(directory=KEEL_ASSETS), name="keel-static")

    @app.get(DOCS_PATH, include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        return HTMLResponse(page)
