"""Swagger UI and ReDoc work in a real browser with no network but 127.0.0.1 (issue 11: blank pages offline).

Headless Debian chromium (/usr/bin/chromium, installed by .ci/run), driven by playwright from PyPI; every
request to another host is aborted and recorded, so a page that still needed a CDN fails here.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import httpx
import pytest

from tests.api.conftest import Service
from tests.support.deps import skip_or_fail

CHROMIUM = os.environ.get("LINSTOR_NAMES_TEST_CHROMIUM", "/usr/bin/chromium")
TIMEOUT_MS = 30_000

try:
    from playwright.async_api import Browser, Page, Route, async_playwright
except ImportError:  # pragma: no cover - the test extra brings it
    async_playwright = None  # type: ignore[assignment]


class OfflinePage:
    """A page whose requests to any host but 127.0.0.1 are aborted; it records them and page errors."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.blocked: list[str] = []
        self.errors: list[str] = []
        page.on("pageerror", lambda error: self.errors.append(str(error)))

    async def only_loopback(self, route: Route) -> None:
        """Let 127.0.0.1 through; abort anything else, as an air-gapped network would."""
        if urlsplit(route.request.url).hostname == "127.0.0.1":
            await route.continue_()
        else:
            self.blocked.append(route.request.url)
            await route.abort("internetdisconnected")


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    """Headless chromium from the distribution: playwright downloads no browser of its own."""
    if async_playwright is None:
        skip_or_fail("playwright is not installed (pip install -e '.[test]')")
    if not os.access(CHROMIUM, os.X_OK):
        skip_or_fail(f"no chromium at {CHROMIUM} (apt-get install chromium; .ci/run does)")
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            yield browser
        finally:
            await browser.close()


@pytest.fixture
async def offline(browser: Browser) -> AsyncIterator[OfflinePage]:
    """A fresh page in its own context, offline but for 127.0.0.1."""
    context = await browser.new_context()
    context.set_default_timeout(TIMEOUT_MS)
    page = OfflinePage(await context.new_page())
    await context.route("**/*", page.only_loopback)
    try:
        yield page
    finally:
        await context.close()


async def test_swagger_ui_renders_every_operation_and_runs_one_offline(
    offline: OfflinePage, service_server: Service
) -> None:
    async with httpx.AsyncClient(base_url=service_server.url) as client:
        spec = (await client.get("/openapi.json")).json()
    operations = sum(len(item) for item in spec["paths"].values())
    page = offline.page

    await page.goto(f"{service_server.url}/docs")
    await page.locator(".opblock").nth(operations - 1).wait_for()
    assert await page.locator(".opblock").count() == operations

    # "Try it out" on GET /healthz, then Execute: the live response shows 200 and the body
    healthz = page.locator("#operations-health-healthz")
    await healthz.locator(".opblock-summary").click()
    await healthz.locator(".try-out__btn").click()
    await healthz.locator(".execute").click()
    status = healthz.locator(".live-responses-table .response .response-col_status")
    await status.wait_for()
    assert (await status.inner_text()).strip() == "200"
    assert '"status": "ok"' in await healthz.locator(".live-responses-table .microlight").first.inner_text()

    assert offline.blocked == []
    assert offline.errors == []


async def test_redoc_renders_the_api_title_and_every_operation_offline(
    offline: OfflinePage, service_server: Service
) -> None:
    async with httpx.AsyncClient(base_url=service_server.url) as client:
        spec = (await client.get("/openapi.json")).json()
    ids = sorted(op["operationId"] for item in spec["paths"].values() for op in item.values())
    page = offline.page

    await page.goto(f"{service_server.url}/redoc")
    title = page.locator(".api-info h1")
    await title.wait_for()
    assert (await title.inner_text()).startswith(f"{spec['info']['title']} ({spec['info']['version']})")
    # each operation's heading in the content pane links to #tag/<tag>/operation/<operationId>
    headings = page.locator("h2 > a[href*='/operation/']")
    await headings.nth(len(ids) - 1).wait_for(state="attached")
    hrefs = [await a.get_attribute("href") or "" for a in await headings.all()]
    assert sorted(href.rsplit("/", 1)[-1] for href in hrefs) == ids

    assert offline.blocked == []
    assert offline.errors == []
