"""Swagger UI at /docs and ReDoc at /redoc, with every asset served by this process (no CDN, no Google Fonts).

FastAPI's own pages load Swagger UI and ReDoc from cdn.jsdelivr.net and fonts from Google: blank pages on an
air-gapped storage network. The assets come from the fastapi-standalone-docs wheel (swagger-ui-dist and
ReDoc's standalone bundle, each with its licence); only its files are used, not its StandaloneDocs class,
which patches fastapi.applications for every app in the process.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from fastapi import APIRouter, FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import FileResponse, HTMLResponse
from fastapi.staticfiles import StaticFiles

# swagger/ (swagger-ui-bundle.js, swagger-ui.css), redoc/ (redoc.standalone.js, logo-mini.svg), fastapi/
ASSETS = Path(str(files("fastapi_standalone_docs") / "static"))
STATIC_URL = "/static/docs"
DOCS_URL = "/docs"
REDOC_URL = "/redoc"
OAUTH2_REDIRECT_URL = f"{DOCS_URL}/oauth2-redirect"

router = APIRouter(include_in_schema=False)


def install(app: FastAPI) -> None:
    """Serve the docs pages and their assets; create the app with docs_url=None and redoc_url=None."""
    app.swagger_ui_oauth2_redirect_url = OAUTH2_REDIRECT_URL
    app.mount(STATIC_URL, StaticFiles(directory=ASSETS), name="docs-assets")
    app.include_router(router)


def _root(request: Request) -> str:
    """The prefix the app is served under behind a proxy (ASGI root_path), so asset URLs stay right."""
    root: str = request.scope.get("root_path", "")
    return root.rstrip("/")


@router.get(DOCS_URL)
async def swagger_ui(request: Request) -> HTMLResponse:
    """Swagger UI, with "Try it out" and the Authorize button (init_oauth from the app when set)."""
    app: FastAPI = request.app
    root = _root(request)
    return get_swagger_ui_html(
        openapi_url=f"{root}{app.openapi_url}",
        title=f"{app.title} - Swagger UI",
        swagger_js_url=f"{root}{STATIC_URL}/swagger/swagger-ui-bundle.js",
        swagger_css_url=f"{root}{STATIC_URL}/swagger/swagger-ui.css",
        swagger_favicon_url=f"{root}{STATIC_URL}/fastapi/favicon.png",
        oauth2_redirect_url=f"{root}{OAUTH2_REDIRECT_URL}",
        init_oauth=app.swagger_ui_init_oauth,
        # validatorUrl null: Swagger UI would otherwise send the document to validator.swagger.io for a badge
        swagger_ui_parameters={**(app.swagger_ui_parameters or {}), "validatorUrl": None},
    )


@router.get(OAUTH2_REDIRECT_URL)
async def swagger_ui_oauth2_redirect() -> HTMLResponse:
    """The page an OAuth2 provider sends Swagger UI's Authorize flow back to."""
    return get_swagger_ui_oauth2_redirect_html()


@router.get(REDOC_URL)
async def redoc(request: Request) -> HTMLResponse:
    """ReDoc, with the browser's own fonts instead of Google Fonts."""
    app: FastAPI = request.app
    root = _root(request)
    return get_redoc_html(
        openapi_url=f"{root}{app.openapi_url}",
        title=f"{app.title} - ReDoc",
        redoc_js_url=f"{root}{STATIC_URL}/redoc/redoc.standalone.js",
        redoc_favicon_url=f"{root}{STATIC_URL}/fastapi/favicon.png",
        with_google_fonts=False,
    )


@router.get(f"{REDOC_URL}/logo-mini.svg")
async def redoc_logo() -> FileResponse:
    """ReDoc's sidebar logo: the packaged bundle asks for it beside the page, not from cdn.redoc.ly."""
    return FileResponse(ASSETS / "redoc" / "logo-mini.svg", media_type="image/svg+xml")
