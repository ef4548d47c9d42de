"""Screenshots of the main pages in both themes, on a desktop and a phone.

They are written to a temporary folder and checked (a page drawn, a small PNG); with
PORTAL_SCREENSHOTS_DIR=docs/screenshots they refresh the README's pictures.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from django.urls import reverse
from playwright.sync_api import expect

from .conftest import login
from .test_ui_responsive_a11y import PHONE, released, ui  # noqa: F401 - fixtures shared with the a11y suite

pytestmark = [pytest.mark.e2e]

MAX_BYTES = 400_000


def test_screenshots_of_the_main_pages(ui, released, tmp_path):  # noqa: F811 - the imported fixtures
    folder = Path(os.environ.get("PORTAL_SCREENSHOTS_DIR") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    pages = {
        "dashboard": reverse("portal:dashboard"),
        "history": reverse("portal:history"),
        "release": released.get_absolute_url(),
        "mapping": released.mapping.get_absolute_url(),
        "release-form": reverse("portal:release-create", args=[released.mapping_id]),
    }
    shots = []
    for scheme in ("light", "dark"):
        page = ui({"width": 1280, "height": 800}, scheme)
        login(page, "alice")
        for name, url in pages.items():
            page.goto(url)
            page.wait_for_load_state("networkidle")
            expect(page.locator("main h1")).to_be_visible()
            shots.append(folder / f"{name}-{scheme}.png")
            page.screenshot(path=shots[-1])
        phone = ui(PHONE, scheme)
        login(phone, "alice")
        phone.goto(released.get_absolute_url())
        phone.wait_for_load_state("networkidle")
        shots.append(folder / f"release-phone-{scheme}.png")
        phone.screenshot(path=shots[-1])
    for shot in shots:
        data = shot.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and 5_000 < len(data) < MAX_BYTES, shot.name
