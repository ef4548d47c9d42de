"""Every main page on a desktop and a phone, in both themes: no horizontal page scroll,
0 critical or serious axe-core violations, 0 console errors. Plus the frame's own controls:
the collapsing menu, the remembered theme toggle, the skip link and the focus ring."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from axe_playwright_python.sync_playwright import Axe
from django.urls import reverse
from django.utils import timezone
from playwright.sync_api import Page, expect

from portal.models import Release
from portal.services.mappings import params_validate
from portal.services.releases import release_create
from tests.factories import UploadFactory
from tests.helpers import drive_release

from .conftest import login

pytestmark = [pytest.mark.e2e]

DESKTOP = {"width": 1440, "height": 900}
PHONE = {"width": 390, "height": 844}
AXE = Axe()


@pytest.fixture
def ui(browser, live_server, sim, transactional_db) -> Iterator[Any]:
    """Opens pages at a viewport and colour scheme, collecting console errors."""
    contexts = []

    def open_page(viewport: dict[str, int], scheme: str = "light") -> Page:
        context = browser.new_context(base_url=live_server.url, viewport=viewport, color_scheme=scheme)
        context.set_default_timeout(15_000)
        contexts.append(context)
        page = context.new_page()
        page.errors = []  # type: ignore[attr-defined]
        page.on("console", lambda m: m.type == "error" and page.errors.append(m.text))  # type: ignore[attr-defined]
        page.on("pageerror", lambda e: page.errors.append(str(e)))  # type: ignore[attr-defined]
        page.on("dialog", lambda d: d.accept())
        return page

    yield open_page
    for context in contexts:
        context.close()


@pytest.fixture
def released(toucan_mapping, alice, olivia, bob):
    """A finished release, so every page has something to show."""
    upload = UploadFactory(dataset=toucan_mapping.dataset, uploaded_by=olivia)
    params = params_validate(mapping=toucan_mapping, data={"operations": ["release"]})
    release = release_create(mapping=toucan_mapping, upload=upload, params=params, actor=olivia)
    return drive_release(release)


def main_pages(release: Release) -> list[str]:
    mapping, dataset, connection = release.mapping, release.dataset, release.mapping.connection
    return [
        reverse("portal:dashboard"),
        reverse("portal:dataset-list"),
        dataset.get_absolute_url(),
        reverse("portal:upload-create", args=[dataset.pk]),
        mapping.get_absolute_url(),
        reverse("portal:mapping-edit", args=[mapping.pk]),
        reverse("portal:release-create", args=[mapping.pk]),
        release.get_absolute_url(),
        reverse("portal:history"),
        reverse("portal:release-set-list"),
        reverse("portal:connection-list"),
        connection.get_absolute_url(),
        reverse("portal:connection-edit", args=[connection.pk]),
        reverse("portal:team-list"),
        reverse("portal:team-detail", args=[release.team_id]),
        reverse("portal:account"),
    ]


def serious_violations(page: Page) -> list[str]:
    results = AXE.run(page)
    return [
        f"{v['id']} ({v['impact']}): {[n['target'] for n in v['nodes']][:3]}"
        for v in results.response["violations"]
        if v["impact"] in ("critical", "serious")
    ]


def page_overflow(page: Page) -> int:
    return page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")


@pytest.mark.parametrize("scheme", ["light", "dark"])
@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["1440x900", "390x844"])
def test_every_main_page_fits_is_accessible_and_logs_no_error(ui, released, viewport, scheme):
    page = ui(viewport, scheme)
    login(page, "alice")
    problems: dict[str, list[str]] = {}
    for url in main_pages(released):
        page.goto(url)
        page.wait_for_load_state("networkidle")
        found = serious_violations(page)
        if (overflow := page_overflow(page)) > 0:
            found.append(f"the page scrolls sideways by {overflow} px")
        if page.errors:  # type: ignore[attr-defined]
            found += [f"console: {e}" for e in page.errors]  # type: ignore[attr-defined]
            page.errors.clear()  # type: ignore[attr-defined]
        if found:
            problems[url] = found
    assert problems == {}


def test_the_login_page_is_accessible_on_a_phone_in_both_themes(ui, db):
    for scheme in ("light", "dark"):
        page = ui(PHONE, scheme)
        page.goto("/login/")
        assert serious_violations(page) == [] and page_overflow(page) <= 0 and page.errors == []  # type: ignore[attr-defined]


def test_the_menu_collapses_on_a_phone_with_44px_targets(ui, released):
    page = ui(PHONE)
    login(page, "alice")
    nav = page.locator("#mainnav")
    expect(nav).to_be_hidden()
    toggle = page.locator(".nav-toggle")
    expect(toggle).to_have_attribute("aria-expanded", "false")
    toggle.click()
    expect(nav).to_be_visible()
    expect(toggle).to_have_attribute("aria-expanded", "true")
    for link in nav.locator("a").all():
        box = link.bounding_box()
        assert box is not None and box["height"] >= 44, link.inner_text()
    nav.locator("text=Job history").click()
    expect(page.locator("h1")).to_contain_text("history")
    # Buttons on a page are as tall as a finger too.
    page.goto(released.mapping.get_absolute_url())
    for button in page.locator("main .button, main button").all():
        if button.is_visible():
            box = button.bounding_box()
            assert box is not None and box["height"] >= 44, button.inner_text()


def test_the_desktop_menu_is_always_shown(ui, released):
    page = ui(DESKTOP)
    login(page, "alice")
    expect(page.locator("#mainnav")).to_be_visible()
    expect(page.locator(".nav-toggle")).to_be_hidden()


def test_the_theme_follows_the_system_until_toggled_and_is_remembered(ui, released):
    page = ui(DESKTOP, "dark")
    login(page, "alice")

    def background() -> str:
        return page.evaluate("getComputedStyle(document.body).backgroundColor")

    dark = background()
    toggle = page.locator("[data-theme-toggle]")
    expect(toggle).to_have_attribute("aria-pressed", "true")
    toggle.click()
    expect(toggle).to_have_attribute("aria-pressed", "false")
    light = background()
    assert dark != light
    page.goto(reverse("portal:history"))
    assert background() == light, "the choice is remembered across pages"
    assert page.evaluate("document.documentElement.dataset.theme") == "light"


def test_a_skip_link_and_a_visible_focus_ring(ui, released):
    page = ui(DESKTOP)
    login(page, "alice")
    page.keyboard.press("Tab")
    skip = page.locator(".skip-link")
    expect(skip).to_be_focused()
    assert skip.bounding_box()["y"] >= 0, "the skip link shows when focused"  # type: ignore[index]
    page.keyboard.press("Enter")
    assert page.evaluate("location.hash") == "#main"
    page.keyboard.press("Tab")
    outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    width = page.evaluate("parseFloat(getComputedStyle(document.activeElement).outlineWidth)")
    assert outline == "solid" and width >= 2


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_the_charts_draw_in_the_theme_with_a_text_alternative(ui, released, scheme):
    page = ui(DESKTOP, scheme)
    login(page, "alice")
    for url, chart in ((reverse("portal:dashboard"), "daily"), (released.mapping.get_absolute_url(), "trend")):
        page.goto(url)
        figure = page.locator(f"figure[data-chart={chart}]")
        expect(figure.locator("canvas")).to_have_count(1)
        label = figure.locator(".chart-canvas").get_attribute("aria-label")
        assert label and "1" in label
        assert page.errors == []  # type: ignore[attr-defined]
    page.goto(released.get_absolute_url())
    bars = page.locator("svg.gantt rect")
    expect(bars.first).to_be_visible()
    assert bars.count() >= 2
    work = page.evaluate("getComputedStyle(document.querySelector('svg.gantt .seg-work')).fill")
    accent = page.evaluate("getComputedStyle(document.documentElement).getPropertyValue('--accent').trim()")
    assert work and accent, "the timeline is drawn in the theme's accent"


def test_slash_focuses_search_and_ctrl_k_jumps_anywhere(ui, released):
    page = ui(DESKTOP)
    login(page, "alice")
    page.goto(reverse("portal:history"))
    page.keyboard.press("/")
    expect(page.locator("main input[name=q]")).to_be_focused()
    page.locator("main h1").click()
    page.keyboard.press("Control+k")
    box = page.locator("dialog.jump")
    expect(box).to_be_visible()
    page.keyboard.type(released.mapping.name[:8])
    expect(box.locator(".jump-results a").first).to_be_visible()
    assert serious_violations(page) == []
    page.keyboard.press("ArrowDown")
    page.keyboard.press("Enter")
    page.wait_for_url(f"**{released.mapping.get_absolute_url()}")
    page.keyboard.press("Control+k")
    page.keyboard.type(f"#{released.pk}")
    expect(box.locator(".jump-results a").first).to_contain_text(f"Release #{released.pk}")
    page.keyboard.press("Enter")
    page.wait_for_url(f"**{released.get_absolute_url()}")
    assert page.errors == []  # type: ignore[attr-defined]


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["1440x900", "390x844"])
def test_bulk_cancel_from_the_history_after_a_preview(ui, released, viewport):
    from tests.factories import ReleaseFactory

    # Their tasks are queued (so a sweep left over from another test cannot start them meanwhile).
    later = timezone.now() + timedelta(hours=1)
    queued = [ReleaseFactory(mapping=released.mapping, status="queued", dispatch_due_at=later) for _ in range(2)]
    page = ui(viewport)
    login(page, "olivia")
    page.goto(reverse("portal:history"))
    page.locator("[data-select-all]").check()
    page.select_option("select[name=action]", "cancel")
    page.click("button:has-text('Preview')")
    expect(page.locator("h1")).to_have_text("Cancel 2 releases?")
    expect(page.locator("[data-bulk-summary]")).to_contain_text("1 left alone")
    assert serious_violations(page) == [] and page_overflow(page) <= 0
    assert not Release.objects.filter(cancel_requested=True).exists(), "the preview changes nothing"
    page.click("button:has-text('Cancel 2 releases')")
    expect(page.locator(".messages")).to_contain_text("Cancel requested for 2 releases.")
    assert set(Release.objects.filter(cancel_requested=True).values_list("pk", flat=True)) == {r.pk for r in queued}
    assert page.errors == []  # type: ignore[attr-defined]


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["1440x900", "390x844"])
def test_the_release_form_runs_its_pre_flight_live(ui, released, viewport):
    from tests.factories import UploadFactory as Upload

    Upload(dataset=released.dataset, original_name="newer.csv")  # the factory's bytes: the same as released
    page = ui(viewport)
    login(page, "olivia")
    page.goto(reverse("portal:release-create", args=[released.mapping_id]))
    panel = page.locator("#preflight .preflight")
    expect(panel).to_contain_text("The target exists on Toucan Toco")
    expect(panel.locator("[data-level=warning]")).to_contain_text("Same content as the last release")
    page.select_option("#id_upload", str(released.upload_id))
    expect(panel).to_contain_text("This file was already released")
    assert serious_violations(page) == [] and page_overflow(page) <= 0 and page.errors == []  # type: ignore[attr-defined]
