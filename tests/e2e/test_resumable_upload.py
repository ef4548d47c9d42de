"""The upload page in chromium: Uppy's tus plugin against the portal's tus server, with a
network cut and a page reload in the middle of an upload; the stored SHA-256 must match."""

from __future__ import annotations

import hashlib
import os
import time

import pytest
from playwright.sync_api import expect

from portal.models import TusUpload, Upload
from tests.factories import DatasetFactory

from .conftest import UPPY_DROP, login

pytestmark = [pytest.mark.e2e]

KiB = 1024


@pytest.fixture
def upload_page(browser, live_server, transactional_db, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.PORTAL_UPLOAD_CHUNK_BYTES = 128 * KiB
    context = browser.new_context(base_url=live_server.url, viewport={"width": 1280, "height": 900})
    context.set_default_timeout(20_000)
    page = context.new_page()
    page.tus_requests = []
    page.on(
        "request",
        lambda r: "/uploads/tus/" in r.url and page.tus_requests.append((r.method, r.headers.get("upload-offset"))),
    )
    yield page
    context.close()


def _network(page, *, offline: bool = False, upload_bytes_per_s: int = -1) -> None:
    if not hasattr(page, "cdp"):
        page.cdp = page.context.new_cdp_session(page)
        page.cdp.send("Network.enable")
    page.cdp.send(
        "Network.emulateNetworkConditions",
        {"offline": offline, "latency": 0, "downloadThroughput": -1, "uploadThroughput": upload_bytes_per_s},
    )


def _wait_offset(at_least: int) -> TusUpload:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        row = TusUpload.objects.filter(offset__gte=at_least).first()
        if row is not None:
            return row
        time.sleep(0.05)
    raise AssertionError(f"the server never reached {at_least} bytes")


def _open(page, olivia) -> None:
    dataset = DatasetFactory(team=olivia.memberships.get().team, name="Sales")
    login(page, "olivia")
    page.goto(f"/datasets/{dataset.pk}/upload/")
    expect(page.locator("#tus-upload")).to_be_visible()
    expect(page.locator("#upload-form-plain")).to_be_hidden()
    return dataset


def test_an_upload_survives_a_network_cut(upload_page, olivia, tmp_path):
    page = upload_page
    dataset = _open(page, olivia)
    data = os.urandom(2 * 1024 * KiB + 777)
    path = tmp_path / "sales.csv"
    path.write_bytes(data)
    _network(page, upload_bytes_per_s=1024 * KiB)

    page.set_input_files(".uppy-Dashboard-input >> nth=0", str(path))
    row = page.locator("#tus-files tr[data-name='sales.csv']")
    expect(row.locator(".status")).to_have_text("uploading")
    before = _wait_offset(400 * KiB).offset
    _network(page, offline=True)  # the laptop loses its network in the middle of a chunk
    time.sleep(1.5)
    cut_at = TusUpload.objects.get().offset
    assert cut_at >= before
    _network(page, upload_bytes_per_s=-1)

    expect(row.locator(".status")).to_have_text("stored", timeout=60_000)
    upload = Upload.objects.get(dataset=dataset)
    assert upload.sha256 == hashlib.sha256(data).hexdigest()
    assert upload.size == len(data)
    # After the cut the client asked the server where it was, then went on from there.
    methods = [m for m, _ in page.tus_requests]
    assert "HEAD" in methods, (page.tus_requests, cut_at, before)
    after_head = page.tus_requests[methods.index("HEAD") + 1]
    assert after_head[0] == "PATCH" and int(after_head[1]) == cut_at
    expect(row.locator(".speed")).not_to_have_text("")
    expect(page.locator("#tus-done")).to_contain_text("Uploaded 1 file")


def test_an_upload_resumes_after_a_pause_and_a_page_reload(upload_page, olivia, tmp_path):
    page = upload_page
    dataset = _open(page, olivia)
    data = os.urandom(1536 * KiB + 5)
    path = tmp_path / "readings.csv"
    path.write_bytes(data)
    _network(page, upload_bytes_per_s=512 * KiB)
    page.set_input_files(".uppy-Dashboard-input >> nth=0", str(path))
    _wait_offset(300 * KiB)
    page.click(".uppy-StatusBar-actionBtn--pause, button[title='Pause upload']")
    expect(page.locator("#tus-files tr[data-name='readings.csv'] .status")).to_have_text("paused")
    time.sleep(0.5)
    paused_at = TusUpload.objects.get().offset
    assert 0 < paused_at < len(data)

    page.reload()  # the tab is reloaded; the same file is chosen again
    page.tus_requests.clear()
    _network(page, upload_bytes_per_s=-1)
    page.set_input_files(".uppy-Dashboard-input >> nth=0", str(path))
    expect(page.locator("#tus-files tr[data-name='readings.csv'] .status")).to_have_text("stored", timeout=60_000)

    patches = [int(offset) for method, offset in page.tus_requests if method == "PATCH"]
    assert "POST" not in [m for m, _ in page.tus_requests]  # no new upload: the old one resumed
    assert patches[0] == paused_at
    upload = Upload.objects.get(dataset=dataset)
    assert upload.sha256 == hashlib.sha256(data).hexdigest()


def test_a_wrong_type_or_an_oversize_file_is_refused_before_any_byte_is_sent(upload_page, olivia, tmp_path, settings):
    settings.PORTAL_UPLOAD_MAX_BYTES = 1000
    page = upload_page
    _open(page, olivia)
    big = tmp_path / "big.csv"
    big.write_bytes(b"x" * 2000)
    tool = tmp_path / "tool.exe"
    tool.write_bytes(b"MZ")
    page.set_input_files(".uppy-Dashboard-input >> nth=0", str(big))
    expect(page.locator("#tus-error")).to_contain_text("big.csv")
    page.set_input_files(".uppy-Dashboard-input >> nth=0", str(tool))
    expect(page.locator("#tus-error")).to_contain_text("tool.exe")
    page.wait_for_timeout(300)
    assert page.tus_requests == []
    assert not TusUpload.objects.exists()


def test_several_dropped_files_upload_side_by_side(upload_page, olivia):
    page = upload_page
    dataset = _open(page, olivia)
    files = {"north.csv": "region,amount\nnorth,10\n" * 5000, "south.tsv": "region\tamount\nsouth\t20\n" * 7000}
    page.wait_for_selector(UPPY_DROP)
    page.evaluate(
        """([selector, files]) => {
            const transfer = new DataTransfer();
            for (const [name, content] of Object.entries(files)) transfer.items.add(new File([content], name));
            const zone = document.querySelector(selector);
            zone.dispatchEvent(new DragEvent("dragenter", {dataTransfer: transfer, bubbles: true}));
            zone.dispatchEvent(new DragEvent("drop", {dataTransfer: transfer, bubbles: true}));
        }""",
        [UPPY_DROP, files],
    )
    for name in files:
        expect(page.locator(f"#tus-files tr[data-name='{name}'] .status")).to_have_text("stored")
    expect(page.locator("#tus-done")).to_contain_text("Uploaded 2 files")
    stored = {u.original_name: u.sha256 for u in Upload.objects.filter(dataset=dataset)}
    assert stored == {name: hashlib.sha256(content.encode()).hexdigest() for name, content in files.items()}
