"""Browser fixtures: the test's app served on a free port, and headless Debian Chromium."""

import threading
from pathlib import Path

import pytest
from playwright.sync_api import expect
from werkzeug.serving import make_server

from tests.conftest import missing
from tests.fixtures import free_port
from tests.fixtures.factories import PASSWORD

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture
def live_server(app):
    """Serve the test's app on 127.0.0.1; yields the base URL."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    app.config["PUBLIC_BASE_URL"] = url
    server = make_server("127.0.0.1", port, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield url
    server.shutdown()
    thread.join(timeout=10)
    server.server_close()


@pytest.fixture(scope="session")
def browser():
    if not Path(CHROMIUM).exists():
        missing(f"Chromium ({CHROMIUM}) is not installed; apt-get install chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def new_page(browser, live_server, request):
    """``new_page()`` -> a page in a fresh browser context (its own cookies) on the live server."""
    contexts = []
    violations = []  # the Content-Security-Policy is on: a page that breaks it fails its test

    def _new_page():
        context = browser.new_context(base_url=live_server)
        context.set_default_timeout(15_000)
        contexts.append(context)
        page = context.new_page()
        page.on("console", lambda message: violations.append(f"{page.url}: {message.text}")
                if "Content Security Policy" in message.text or "Content-Security-Policy" in message.text else None)
        return page

    yield _new_page
    failed = getattr(request.node, "rep_call", None) and request.node.rep_call.failed
    for i, context in enumerate(contexts):
        if failed:
            for j, pg in enumerate(context.pages):
                pg.screenshot(path=f"/tmp/e2e-{request.node.name}-{i}-{j}.png", full_page=True)
        context.close()
    assert not violations, violations


@pytest.fixture
def page(new_page):
    return new_page()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if report.when == "call":
        item.rep_call = report
    return report


def log_in(page, email, password=PASSWORD):
    """Log in through the login page and wait until the user menu is there."""
    page.goto("/login")
    page.locator('[name="email"]').fill(email)
    page.locator('[name="password"]').fill(password)
    page.locator("main button[type=submit]").click()
    expect(page.get_by_test_id("whoami")).to_be_attached()
    page.wait_for_load_state("load")  # the scripts have run: the user menu opens when clicked
