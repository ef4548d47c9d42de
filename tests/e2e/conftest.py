"""Playwright driving Debian's chromium against the live server, a real worker and the simulators."""

from __future__ import annotations

import os

import pytest

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--no-first-run",
]


CSP_LISTENER = """
document.addEventListener("securitypolicyviolation", (e) => {
  window.__portalCspViolation(`${location.pathname}: ${e.violatedDirective} blocked ${e.blockedURI || "inline"}`);
});
"""


@pytest.fixture(scope="session")
def browser():
    if not os.path.exists(CHROMIUM):
        pytest.fail("Debian's chromium is missing: the test command (make test) installs it")
    # Playwright's sync API runs an event loop in this thread; the ORM calls the tests make
    # between browser actions are still plain synchronous calls.
    os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        yield browser
        browser.close()


@pytest.fixture
def page(browser, live_server, celery_worker_process, sim, transactional_db):
    context = browser.new_context(base_url=live_server.url, viewport={"width": 1280, "height": 900})
    context.set_default_timeout(15_000)
    # Every flow counts Content-Security-Policy violations and expects none (docs/security.md).
    violations: list[str] = []
    context.expose_function("__portalCspViolation", lambda violation: violations.append(violation))
    context.add_init_script(CSP_LISTENER)
    page = context.new_page()
    page.csp_violations = violations
    # Confirmation dialogs: recorded, then accepted unless a test sets page.dismiss_dialogs.
    page.dialogs = []
    page.dismiss_dialogs = False

    def answer(dialog):  # type: ignore[no-untyped-def]
        page.dialogs.append(dialog.message)
        dialog.dismiss() if page.dismiss_dialogs else dialog.accept()

    page.on("dialog", answer)
    yield page
    context.close()
    assert violations == [], f"Content-Security-Policy violations: {violations}"


def login(page, username: str, password: str = "password") -> None:
    page.goto("/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("button[type=submit]")
    page.wait_for_url("**/")


#: Where Uppy's Dashboard (the upload page, static/portal/uploads.js) takes dropped files.
UPPY_DROP = "#uppy-dashboard .uppy-Dashboard-inner"


def drop_file(page, selector: str, name: str, content: str) -> None:
    """A real drag and drop: a DataTransfer holding a File, dropped on the zone."""
    page.wait_for_selector(selector)
    page.evaluate(
        """([selector, name, content]) => {
            const transfer = new DataTransfer();
            transfer.items.add(new File([content], name, {type: "text/csv"}));
            const zone = document.querySelector(selector);
            zone.dispatchEvent(new DragEvent("dragenter", {dataTransfer: transfer, bubbles: true}));
            zone.dispatchEvent(new DragEvent("drop", {dataTransfer: transfer, bubbles: true}));
        }""",
        [selector, name, content],
    )
