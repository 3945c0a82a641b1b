"""Swagger UI and ReDoc pages, and every asset they load, are served by the service itself (issue 11)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import httpx
import pytest

from app.api.docs import ASSETS
from app.main import create_app
from app.settings import Settings

# any absolute or scheme-relative URL: the pages name no host at all, so they load on an air-gapped network
EXTERNAL = re.compile(r"(?:https?:)?//[\w.-]+")
REFERENCED = re.compile(r'(?:src|href)="([^"]+)"')


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    """The app in process: the docs need neither LINSTOR nor the cache."""
    app = create_app(Settings(cache_url="none"))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://test") as client:
        yield client


@pytest.mark.parametrize(
    ("page", "assets"),
    [
        ("/docs", ["swagger-ui-bundle.js", "swagger-ui.css", "favicon.png"]),
        ("/redoc", ["redoc.standalone.js", "favicon.png"]),
    ],
)
async def test_docs_page_loads_only_local_assets(
    client: httpx.AsyncClient, page: str, assets: list[str]
) -> None:
    answer = await client.get(page)
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/html")
    assert EXTERNAL.findall(answer.text) == []
    referenced = REFERENCED.findall(answer.text)
    assert sorted(url.rsplit("/", 1)[-1] for url in referenced) == sorted(assets)
    for url in referenced:
        assert url.startswith("/static/docs/"), url
        asset = await client.get(url)
        assert asset.status_code == 200, url
        assert len(asset.content) > 0, url


async def test_redoc_uses_no_google_fonts_and_its_logo_is_local(client: httpx.AsyncClient) -> None:
    page = await client.get("/redoc")
    assert "fonts.googleapis.com" not in page.text
    logo = await client.get("/redoc/logo-mini.svg")
    assert logo.status_code == 200
    assert logo.headers["content-type"] == "image/svg+xml"


async def test_swagger_ui_sends_the_document_to_no_validator(client: httpx.AsyncClient) -> None:
    page = await client.get("/docs")
    assert '"validatorUrl": null' in page.text
    assert "oauth2RedirectUrl: window.location.origin + '/docs/oauth2-redirect'" in page.text


async def test_oauth2_redirect_page_is_served(client: httpx.AsyncClient) -> None:
    answer = await client.get("/docs/oauth2-redirect")
    assert answer.status_code == 200
    assert "oauth2" in answer.text


async def test_bundled_assets_carry_their_licences() -> None:
    assert "Apache License" in (ASSETS / "swagger" / "LICENSE").read_text()
    assert (ASSETS / "redoc" / "redoc.standalone.js.LICENSE.txt").is_file()


async def test_docs_routes_stay_out_of_the_openapi_document(client: httpx.AsyncClient) -> None:
    paths = (await client.get("/openapi.json")).json()["paths"]
    assert not [path for path in paths if path.startswith(("/docs", "/redoc", "/static"))]
