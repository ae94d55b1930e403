"""The JavaScript client library in real headless Chromium (Debian's ``chromium``, driven by
``playwright-core`` from tests/node), loaded as ES modules with an import map, no bundler.

The page (clients/js/test/browser/index.html) reads a channel through the fault proxy with
LocalStoragePositions; the test cuts its connection while publishing, then reloads the page:
it must resume from the position kept in localStorage, with nothing repeated or lost.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from urllib.parse import urlencode

import pytest
from aiohttp import web
from js_client_peer import (
    CLIENT_DIR,
    ROOT,
    JsDriver,
    ReferenceNode,
    require_tools,
    running_reference,
)

from conformance.faults.proxy import FaultProxy

CHANNEL = "browser:1"
CUTS = 5
BEFORE_RELOAD = 10 + CUTS * 5
TOTAL = BEFORE_RELOAD + 5
PAGE_DRIVER = ROOT / "tests" / "node" / "js_client_page.mjs"


async def static_site(reference: ReferenceNode) -> web.AppRunner:
    """clients/js as static files (src/, node_modules/, test/browser/) and POST /token, the
    page's backend: it registers the page's session again for every connection (SES-4)."""

    async def token(_: web.Request) -> web.Response:
        reply = await reference.call("POST", "/replay/v1/sessions", {
            "session_id": "browser-tab",
            "client_id": "browser",
            "grants": [{"channels": "*", "actions": ["subscribe"]}],
        })  # fmt: skip
        return web.json_response({"token": reply["token"]})

    app = web.Application()
    app.router.add_post("/token", token)
    app.router.add_static("/", CLIENT_DIR)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    return runner


@pytest.fixture
async def reference() -> AsyncIterator[ReferenceNode]:
    async with running_reference() as server:
        yield server


async def test_a_page_resumes_across_cuts_and_a_reload_from_local_storage(
    reference: ReferenceNode,
) -> None:
    node, chromium = require_tools(browser=True)
    site = await static_site(reference)
    page = None
    try:
        async with FaultProxy("127.0.0.1", reference.port) as proxy:
            query = urlencode({"url": proxy.url, "channel": CHANNEL})
            page_url = f"http://127.0.0.1:{site.addresses[0][1]}/test/browser/index.html?{query}"
            page = await JsDriver.spawn(node, str(PAGE_DRIVER), chromium, page_url)
            for n in range(1, 11):
                await reference.publish(CHANNEL, {"n": n})
            await page.wait_until(lambda: len(page.offsets()) == 10, 30)
            assert page.events("loaded")[0]["stored"] is None
            for cut in range(CUTS):  # cuts while the backend publishes
                await proxy.cut()
                for n in range(5):
                    await reference.publish(CHANNEL, {"n": 11 + cut * 5 + n})
                await page.wait_until(lambda c=cut: len(page.events("subscribed")) == c + 2, 15)
            await page.wait_until(lambda: len(page.offsets()) == BEFORE_RELOAD, 15)
            before_reload = page.offsets()
            epoch = before_reload[0][0]
            await page.command("reload")
            await page.wait_until(lambda: len(page.events("loaded")) == 2, 15)
            assert page.events("loaded")[1]["stored"] == {"epoch": epoch, "offset": BEFORE_RELOAD}
            for n in range(BEFORE_RELOAD + 1, TOTAL + 1):
                await reference.publish(CHANNEL, {"n": n})
            await page.wait_until(lambda: len(page.offsets()) == TOTAL, 15)
            await page.command("close")
            await page.wait_until(lambda: bool(page.events("done")), 15)
            await asyncio.wait_for(page.process.wait(), 15)
    finally:
        if page is not None:
            await page.kill()
        await site.cleanup()
    errors = page.events("page_error") + page.events("console_error")
    assert errors == [], errors
    offsets = [offset for _, offset in page.offsets()]
    lost = len(set(range(1, TOTAL + 1)) - set(offsets))
    repeated = len(offsets) - len(set(offsets))
    disconnects = len(page.events("disconnect"))
    print(f"\njs_client_browser: {disconnects} forced disconnects, 1 reload, {len(offsets)} "
          f"messages received of {TOTAL}, {lost} lost, {repeated} repeated")  # fmt: skip
    assert [offset for _, offset in before_reload] == list(range(1, BEFORE_RELOAD + 1))
    assert page.offsets() == [(epoch, n) for n in range(1, TOTAL + 1)]  # across the reload too
    resumed = page.events("subscribed")[-1]
    assert resumed["from"] == BEFORE_RELOAD + 1 and resumed["recovered"]
    assert resumed["epoch"] == epoch
    done = page.events("done")[0]
    assert done["stored"] == {"epoch": epoch, "offset": TOTAL}
    assert done["listed"] == list(range(BEFORE_RELOAD + 1, TOTAL + 1))  # the reloaded page's
    assert disconnects >= CUTS
