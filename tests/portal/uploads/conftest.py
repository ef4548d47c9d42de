from __future__ import annotations

import base64
import contextlib
import socket
from urllib.parse import urlsplit

import pytest

from portal import tokens


@pytest.fixture
def sales(team):
    from tests.factories import DatasetFactory

    return DatasetFactory(team=team, name="Sales")


@pytest.fixture
def olivia_key(olivia) -> str:
    _token, key = tokens.token_create(user=olivia, name="tus")
    return key


def metadata(**values: str) -> str:
    return ",".join(f"{k} {base64.b64encode(v.encode()).decode()}" for k, v in values.items())


def cut_patch(url: str, key: str, offset: int, chunk: bytes, send: int) -> None:
    """A PATCH declaring ``len(chunk)`` bytes whose connection closes after ``send`` of them."""
    parts = urlsplit(url)
    head = (
        f"PATCH {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\nTus-Resumable: 1.0.0\r\n"
        f"Authorization: Bearer {key}\r\nContent-Type: application/offset+octet-stream\r\n"
        f"Upload-Offset: {offset}\r\nContent-Length: {len(chunk)}\r\n\r\n"
    ).encode()
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as sock:
        sock.sendall(head + chunk[:send])
        sock.shutdown(socket.SHUT_WR)
        with contextlib.suppress(OSError):
            sock.recv(1024)


@pytest.fixture(autouse=True)
def _own_media(settings, tmp_path):
    """A media folder per test, so a test can count the partial files it left."""
    settings.MEDIA_ROOT = tmp_path / "media"
