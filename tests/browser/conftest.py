"""Browser tests: the real app served on 127.0.0.1 (a free port) to Debian's Chromium."""

import os
import threading

import pytest
from werkzeug.serving import make_server

CHROMIUM = os.environ.get("REVISIT_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]
SHOTS = os.environ.get("REVISIT_SHOTS", "/tmp/shots")


@pytest.fixture(scope="session")
def browser():
    """One headless Chromium for the session (never downloaded: the system one)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def live_server(csrf_app):
    """The app (CSRF on, as in production) served by werkzeug in a background thread."""
    server = make_server("127.0.0.1", 0, csrf_app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=10)


@pytest.fixture
def phone(browser, live_server):
    """A 360×640 touch phone page with clipboard access, pointed at the live server."""
    context = browser.new_context(
        viewport={"width": 360, "height": 640},
        device_scale_factor=2,
        is_mobile=True,
        has_touch=True,
        base_url=live_server,
        permissions=["clipboard-read", "clipboard-write"],
        locale="en-GB",
    )
    # The browser may reach the live server only (wa.me, line.me… are aborted, never fetched).
    context.route(
        "**/*",
        lambda route: (
            route.continue_() if route.request.url.startswith(live_server) else route.abort()
        ),
    )
    page = context.new_page()
    page.set_default_timeout(10_000)
    yield page
    context.close()


@pytest.fixture
def shoot():
    """Save a full-page screenshot under SHOTS; answers its path."""

    def take(page, name: str, full_page: bool = False) -> str:
        os.makedirs(SHOTS, exist_ok=True)
        path = os.path.join(SHOTS, f"{name}.png")
        page.screenshot(path=path, full_page=full_page)
        return path

    return take


VIEWPORTS = {
    "desktop": dict(viewport={"width": 1280, "height": 860}),
    "phone": dict(
        viewport={"width": 360, "height": 640},
        device_scale_factor=2,
        is_mobile=True,
        has_touch=True,
    ),
}


@pytest.fixture
def open_page(browser, live_server):
    """Pages in fresh contexts of a given size ("desktop" or "phone"), reaching only the live server."""
    contexts = []

    def make(size: str):
        context = browser.new_context(base_url=live_server, locale="en-GB", **VIEWPORTS[size])
        context.route(
            "**/*",
            lambda route: (
                route.continue_() if route.request.url.startswith(live_server) else route.abort()
            ),
        )
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(10_000)
        return page

    yield make
    for context in contexts:
        context.close()
