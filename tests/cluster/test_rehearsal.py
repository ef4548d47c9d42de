"""The multi-host rehearsal: a 200 MB file through nginx, two app servers and two workers with
no shared disk, released to Toucan and uSmart while one app server and one worker are SIGKILLed.

The releases must finish, the simulators must hold bytes with the file's sha256, and no
mutating platform call may have been sent twice.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from django.conf import settings

from portal.models import ReleaseEvent, ReleaseStep
from simulators.usmart import DEMO_DATASET, READINGS_FILE
from tests.factories import DatasetFactory, MembershipFactory, TeamFactory, UserFactory
from tests.integration.test_release_sets import demo_mapping

from .cluster import Cluster, start_cluster

pytestmark = [pytest.mark.cluster, pytest.mark.django_db(transaction=True)]

SIZE = 200 * 1024 * 1024
PIECE = 8 * 1024 * 1024  # under nginx's client_max_body_size 10m
PASSWORD = "rehearsal-password-9f2c"  # noqa: S105 - a throwaway user of the test database


@pytest.fixture
def cluster(tmp_path, s3_server, simulators) -> Cluster:  # type: ignore[no-untyped-def]
    db = settings.DATABASES["default"]
    database_url = f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"
    running = start_cluster(
        base=tmp_path / "cluster",
        database_url=database_url,
        s3_env=s3_server.env(location="rehearsal"),
        credential_keys=settings.PORTAL_CREDENTIAL_KEYS,
    )
    yield running
    running.stop()


def big_file(path: Path) -> str:
    """200 MB of CSV rows, none repeated, and its sha256."""
    digest = hashlib.sha256()
    block = os.urandom(512 * 1024).hex()  # 1 MiB of hex text
    with path.open("wb") as out:
        for index in range(SIZE // (1024 * 1024)):
            row = f"{index:08d},{block[: 1024 * 1024 - 10]}\n".encode()
            out.write(row)
            digest.update(row)
    return digest.hexdigest()


def login(client: httpx.Client, username: str) -> None:
    page = client.get("/login/")
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
    assert token, page.text[:500]
    response = client.post(
        "/login/", data={"username": username, "password": PASSWORD, "csrfmiddlewaretoken": token.group(1)}
    )
    assert response.status_code == 302, response.text[:500]
    client.headers["X-CSRFToken"] = client.cookies["csrftoken"]


def upload_in_pieces(
    client: httpx.Client, *, dataset: int, path: Path, on_piece: Callable[[int], None] = lambda offset: None
) -> int:
    """Upload ``path`` the way the browser does (Uppy's tus client, with the session and its CSRF
    header), in pieces each under the proxy's body limit, and return the upload's id. After a cut
    (an app server dies, the proxy answers 502), ask the server for its offset (HEAD) and send the rest.
    """
    size = path.stat().st_size
    tus = {"Tus-Resumable": "1.0.0"}
    encoded = {
        key: base64.b64encode(value.encode()).decode()
        for key, value in (("dataset", str(dataset)), ("filename", "sales.csv"))
    }
    metadata = ",".join(f"{key} {value}" for key, value in encoded.items())
    created = client.post(
        "/api/v1/uploads/tus/", headers={**tus, "Upload-Length": str(size), "Upload-Metadata": metadata}
    )
    assert created.status_code == 201, created.text
    url = created.headers["Location"]
    offset = 0
    with path.open("rb") as source:
        while offset < size:
            source.seek(offset)
            piece = source.read(PIECE)
            try:
                response = client.patch(
                    url,
                    content=piece,
                    headers={**tus, "Upload-Offset": str(offset), "Content-Type": "application/offset+octet-stream"},
                )
                if response.status_code == 204:
                    offset = int(response.headers["Upload-Offset"])
                    on_piece(offset)
                    continue
            except httpx.HTTPError:
                pass
            offset = int(_head(client, url).headers["Upload-Offset"])  # where the server is: resume from there
    for _ in range(20):
        head = _head(client, url)
        if "Upload-Id" in head.headers:
            return int(head.headers["Upload-Id"])
        time.sleep(1)
    raise AssertionError("the upload did not complete")


def _head(client: httpx.Client, url: str) -> httpx.Response:
    for _ in range(20):
        try:
            response = client.head(url, headers={"Tus-Resumable": "1.0.0"})
            if response.status_code == 200:
                return response
        except httpx.HTTPError:
            pass
        time.sleep(1)
    raise AssertionError(f"the server never said where the upload {url} is")


def release(client: httpx.Client, *, mapping: int, upload: int, params: dict) -> int:
    response = client.post(
        "/api/v1/releases/",
        json={"mapping": mapping, "upload": upload, "params": params},
        headers={"Idempotency-Key": f"rehearsal-{mapping}-{upload}"},
    )
    assert response.status_code == 201, response.text
    return int(response.json()["id"])


def release_state(client: httpx.Client, release_id: int) -> dict | None:
    try:
        response = client.get(f"/api/v1/releases/{release_id}/")
    except httpx.HTTPError:
        return None
    return response.json() if response.status_code == 200 else None


def story(finals: dict[int, dict]) -> str:
    """What happened to each release: its steps and its events, read from the database."""
    lines = []
    for release_id, state in finals.items():
        lines.append(f"release {release_id} ({state['platform']}): {state['status']} {state.get('error', '')}")
        for step in ReleaseStep.objects.filter(release_id=release_id).order_by("position"):
            lines.append(
                f"  step {step.name}: {step.status} attempts={step.attempts} fence={step.fence} "
                f"message={step.message!r} error={step.error!r}"
            )
        for entry in ReleaseEvent.objects.filter(release_id=release_id).order_by("pk"):
            lines.append(f"  {entry.created_at:%H:%M:%S.%f} {entry.level}: {entry.message}")
    return "\n".join(lines)


def test_a_200_mb_release_survives_a_dead_app_server_and_a_dead_worker(cluster, sim, tmp_path, settings):
    team = TeamFactory(name="Data team")
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.PBKDF2PasswordHasher"]  # what the app servers run
    alice = UserFactory(username="alice")
    alice.set_password(PASSWORD)
    alice.save()
    MembershipFactory(team=team, user=alice, role="admin")
    dataset = DatasetFactory(team=team, name="Sales")
    toucan = demo_mapping("toucan", team, dataset, sim)
    usmart = demo_mapping("usmart", team, dataset, sim)
    path = tmp_path / "sales.csv"
    sha256 = big_file(path)

    began = time.monotonic()
    client = httpx.Client(base_url=cluster.url, timeout=300)
    login(client, "alice")

    killed: list[str] = []

    def kill_web_midway(offset: int) -> None:
        if offset >= SIZE // 3 and not killed:
            cluster.tiers["web1"].kill()
            killed.append("web1")

    upload = upload_in_pieces(client, dataset=dataset.pk, path=path, on_piece=kill_web_midway)
    assert killed == ["web1"], "an app server died during the upload"
    print(f"upload through the proxy: {time.monotonic() - began:.1f} s")
    toucan_release = release(
        client, mapping=toucan.pk, upload=upload, params={"operations": ["preprocess_data_sources", "release"]}
    )
    usmart_release = release(client, mapping=usmart.pk, upload=upload, params={})

    # A worker dies while the releases run: as soon as a step that sends the file is under way.
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        states = [release_state(client, r) for r in (toucan_release, usmart_release)]
        steps = [step for state in states if state for step in state.get("steps", [])]
        if any(step["status"] in ("running", "waiting", "succeeded") for step in steps):
            break
        time.sleep(0.2)
    cluster.tiers["worker1"].kill()

    finals: dict[int, dict] = {}
    deadline = time.monotonic() + 150
    while time.monotonic() < deadline and len(finals) < 2:
        for release_id in (toucan_release, usmart_release):
            state = release_state(client, release_id)
            if state and state["status"] in ("succeeded", "failed", "cancelled"):
                finals[release_id] = state
        time.sleep(1)
    print(f"releases finished: {time.monotonic() - began:.1f} s")
    assert len(finals) == 2, "the releases did not finish:\n" + cluster.logs()[-6000:]
    assert {r: s["status"] for r, s in finals.items()} == {toucan_release: "succeeded", usmart_release: "succeeded"}, (
        story(finals) + "\n" + cluster.logs()[-12000:]
    )

    # The bytes each platform holds are the file's.
    toucan_state = sim.state("toucan")
    assert toucan_state["sources"]["demo-app/staging/sales.csv"]["sha256"] == sha256
    usmart_state = sim.state("usmart")
    readings = next(f for f in usmart_state["datasets"][DEMO_DATASET]["files"] if f["fileGUID"] == READINGS_FILE)
    assert readings["sha256"] == sha256 and readings["fileSize"] == SIZE

    # No mutating call twice: one Toucan operation request per operation, one new uSmart revision,
    # each output pipeline processed once.
    operation_posts = [request["operations"] for request in toucan_state["requests"] if "operations" in request]
    assert sorted(operation_posts) == [["preprocess_data_sources"], ["release"]], operation_posts
    actions = Counter(request["action"] for request in usmart_state["requests"])
    assert actions["file:updateRevision"] == 1 and readings["revision"] == 2
    assert actions["resourceContainer:process"] == 1
    # The worker hosts kept nothing of the web's: their working directories hold no file data.
    for name in ("worker1", "worker2"):
        stored = [p for p in cluster.tiers[name].workdir.rglob("*") if p.is_file() and p.stat().st_size > 1024 * 1024]
        assert stored == [], f"{name} kept files on its disk: {stored}"
