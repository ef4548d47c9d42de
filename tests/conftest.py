"""Shared fixtures: the simulators, the personas, a real Celery worker process."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .leftovers import MARK, own_mark, stop_leftovers
from .s3 import S3Server
from .simulator import ROOT, SimulatorProcess


def pytest_configure(config: pytest.Config) -> None:
    """Mark this run's processes (its children inherit the variable) and stop an earlier killed run's."""
    os.environ[MARK] = own_mark()
    stopped = stop_leftovers(os.environ[MARK])
    if stopped:
        print(f"stopped {len(stopped)} process(es) left running by an earlier, killed test run: {stopped}")


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup, django_db_blocker):
    """Start every run from empty tables. ``--reuse-db`` keeps the test database between runs,
    and a run killed during a transactional test (or a worker that wrote after its flush)
    would otherwise hand its rows to the next run, which then fails on unique personas."""
    from django.core.management import call_command

    with django_db_blocker.unblock():
        call_command("flush", interactive=False, verbosity=0)


@pytest.fixture(scope="session")
def simulators():
    """The platform simulators, one process for the whole run (0.2 s per remote job state)."""
    process = SimulatorProcess(delay=0.2)
    yield process
    process.stop()


@pytest.fixture
def sim(simulators):
    """The simulators with every platform's state and faults reset before the test."""
    from simulators.app import SIMULATORS

    for slug in SIMULATORS:
        simulators.reset(slug)
        simulators.config(slug, delay=0.2)
    return simulators


@pytest.fixture(scope="session")
def media_root(tmp_path_factory) -> Path:
    """One media folder for the test process, the worker process and the live server."""
    return tmp_path_factory.mktemp("media")


@pytest.fixture(autouse=True)
def _media(request, media_root):
    # Connector tests can run without pytest-django (-p no:django): only Django tests get it.
    if request.config.pluginmanager.hasplugin("django"):
        request.getfixturevalue("settings").MEDIA_ROOT = media_root
        # The worker process stores files on S3 (moto): a test that uses it must too.
        if "celery_worker_process" in request.fixturenames:
            request.getfixturevalue("s3_storage")


@pytest.fixture(scope="session")
def s3_server():
    """A real S3-speaking server (moto_server) on loopback for the whole run, with one bucket."""
    server = S3Server()
    yield server
    server.stop()


@pytest.fixture
def s3_storage(s3_server, settings):
    """Files of this test go to the S3 server through django-storages, as in production."""
    from config.storage import s3_storage as s3_entry

    settings.STORAGES = {**settings.STORAGES, "default": s3_entry(s3_server.env())}
    return s3_server


# Personas (healthchecks' alice / bob / charlie): an admin and a viewer of one team, an
# operator of it, and an outsider in another team.


@pytest.fixture
def team(db):
    from .factories import TeamFactory

    return TeamFactory(name="Data team")


def _member(team, username, role):
    from .factories import MembershipFactory, UserFactory

    user = UserFactory(username=username)
    MembershipFactory(team=team, user=user, role=role)
    return user


@pytest.fixture
def alice(team):
    return _member(team, "alice", "admin")


@pytest.fixture
def olivia(team):
    return _member(team, "olivia", "operator")


@pytest.fixture
def bob(team):
    return _member(team, "bob", "viewer")


@pytest.fixture
def charlie(db):
    from .factories import TeamFactory

    return _member(TeamFactory(name="Other team"), "charlie", "admin")


@pytest.fixture
def toucan_mapping(team, sim):
    """A Toucan mapping of the data team pointing at the simulator."""
    from .factories import ConnectionFactory, DatasetFactory, MappingFactory

    connection = ConnectionFactory(team=team, name="Toucan sim", base_url=sim.url("toucan"))
    dataset = DatasetFactory(team=team, name="Sales")
    return MappingFactory(dataset=dataset, connection=connection, name="Sales on Toucan")


@pytest.fixture
def csv_upload(toucan_mapping, alice):
    from .factories import UploadFactory

    return UploadFactory(dataset=toucan_mapping.dataset, uploaded_by=alice)


# A real Celery worker process on real Redis and the test PostgreSQL database.


@pytest.fixture(scope="session")
def celery_worker_process(django_db_setup, django_db_blocker, media_root, s3_server, tmp_path_factory):
    from django.conf import settings

    db = settings.DATABASES["default"]
    url = f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"
    import redis

    redis.Redis.from_url(settings.CELERY_BROKER_URL).flushdb()
    log = open(media_root.parent / "celery-worker.log", "w")  # noqa: SIM115 - closed at teardown
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "config",
            "worker",
            "--loglevel",
            "INFO",
            "--concurrency",
            "2",
            "--pool",
            "prefork",
            "--without-heartbeat",
            "--without-gossip",
            "--without-mingle",
        ],
        # An empty working directory and no media folder: the worker reads files from S3 only, like a worker host.
        cwd=tmp_path_factory.mktemp("worker-cwd"),
        env={
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "DJANGO_SETTINGS_MODULE": "config.settings.test",
            "DATABASE_URL": url,
            "REDIS_URL": settings.CELERY_BROKER_URL,
            "PORTAL_MEDIA_ROOT": str(tmp_path_factory.mktemp("worker-media-unused")),
            **s3_server.env(),
        },
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if "ready" in (media_root.parent / "celery-worker.log").read_text():
            break
        if process.poll() is not None:
            raise RuntimeError("the Celery worker exited:\n" + (media_root.parent / "celery-worker.log").read_text())
        time.sleep(0.2)
    else:
        process.kill()
        raise RuntimeError("the Celery worker did not start in 30 s")
    yield process
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
    log.close()
