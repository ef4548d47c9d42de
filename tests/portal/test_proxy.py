"""Behind a reverse proxy: the client address from trusted proxies only; proxy settings from the environment."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from django.core.management import call_command
from django.http import HttpRequest, HttpResponse
from django.test import Client, RequestFactory

from portal.security.proxy import TrustedProxyMiddleware, client_address, trusted_networks
from tests.simulator import ROOT

PROXIES = trusted_networks(["127.0.0.1", "10.0.0.0/8", "::1"])


@pytest.mark.parametrize(
    ("peer", "forwarded", "client"),
    [
        ("203.0.113.9", "198.51.100.1", "203.0.113.9"),  # not from our proxy: headers are ignored
        ("127.0.0.1", "198.51.100.1", "198.51.100.1"),
        ("127.0.0.1", "6.6.6.6, 198.51.100.1", "198.51.100.1"),  # the client's own prefix is not believed
        ("127.0.0.1", "198.51.100.1, 10.1.2.3", "198.51.100.1"),  # two of our proxies in a row
        ("10.0.0.5", "[2001:db8::7]:4711, 10.0.0.4", "2001:db8::7"),
        ("127.0.0.1", "", "127.0.0.1"),
        ("127.0.0.1", "not-an-address", "127.0.0.1"),
        ("::1", "198.51.100.1:5555", "198.51.100.1"),
    ],
)
def test_it_believes_x_forwarded_for_only_from_trusted_proxies(peer, forwarded, client):
    assert client_address(peer, forwarded, PROXIES) == client


def test_without_trusted_proxies_the_socket_peer_is_the_client():
    assert client_address("127.0.0.1", "198.51.100.1", []) == "127.0.0.1"


def test_the_middleware_sets_remote_addr(settings):
    settings.PORTAL_TRUSTED_PROXIES = ["127.0.0.1"]

    def echo(request: HttpRequest) -> HttpResponse:
        return HttpResponse(request.META["REMOTE_ADDR"])

    middleware = TrustedProxyMiddleware(echo)
    factory = RequestFactory()
    spoofed = factory.get("/", REMOTE_ADDR="203.0.113.9", HTTP_X_FORWARDED_FOR="1.1.1.1")
    forwarded = factory.get("/", REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR="1.1.1.1, 198.51.100.1")
    assert middleware(spoofed).content == b"203.0.113.9"
    assert middleware(forwarded).content == b"198.51.100.1"


PRODUCTION = {
    "DJANGO_SETTINGS_MODULE": "config.settings.production",
    "DJANGO_SECRET_KEY": "k3-Vq9xZ_r7Lp2Wm8Nc4Bt6Yh1Js5Dg0Fa-e9Qu2Io7Pl3Kx8Zm",  # strong enough for production's check
    "DJANGO_ALLOWED_HOSTS": "portal.example",
    "DATABASE_URL": "postgres://u@h/db",
    "PORTAL_CREDENTIAL_KEYS": "pbo6sn4W8bWgaS_TXJcOBegpfdMBa6i_KcMu_4Z9xdg=",
}
READ = (
    "import json, django; django.setup(); from django.conf import settings as s; print(json.dumps(["
    "s.SECURE_PROXY_SSL_HEADER, s.CSRF_TRUSTED_ORIGINS, s.USE_X_FORWARDED_HOST, s.PORTAL_TRUSTED_PROXIES,"
    "s.SESSION_COOKIE_SECURE, s.STORAGES['default']['BACKEND'], s.MIDDLEWARE[0]]))"
)


def production_settings(**extra: str) -> list:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "PORTAL_", "DATABASE_URL"))}
    result = subprocess.run(
        [sys.executable, "-c", READ], cwd=ROOT, env={**env, **PRODUCTION, **extra}, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_production_reads_every_proxy_setting_from_the_environment():
    assert production_settings() == [
        ["HTTP_X_FORWARDED_PROTO", "https"],
        [],
        False,
        [],
        True,
        "django.core.files.storage.FileSystemStorage",
        "portal.security.proxy.TrustedProxyMiddleware",
    ]
    assert production_settings(
        DJANGO_SECURE_PROXY_SSL_HEADER="HTTP_X_FORWARDED_SCHEME,https",
        DJANGO_CSRF_TRUSTED_ORIGINS="https://portal.example,https://data.example",
        DJANGO_USE_X_FORWARDED_HOST="true",
        PORTAL_TRUSTED_PROXIES="10.0.0.0/8",
        DJANGO_SECURE_COOKIES="false",
        PORTAL_S3_BUCKET="files",
    ) == [
        ["HTTP_X_FORWARDED_SCHEME", "https"],
        ["https://portal.example", "https://data.example"],
        True,
        ["10.0.0.0/8"],
        False,
        "storages.backends.s3.S3Storage",
        "portal.security.proxy.TrustedProxyMiddleware",
    ]


def test_hashed_static_files_are_served_with_far_future_cache_headers(settings, tmp_path):
    settings.STATIC_ROOT = tmp_path
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
    }
    call_command("collectstatic", "--no-input", verbosity=0)
    manifest = json.loads((tmp_path / "staticfiles.json").read_text())["paths"]
    name = next(hashed for original, hashed in manifest.items() if original.endswith(".css"))
    response = Client().get(f"/static/{name}")  # a new client builds the middleware (and whitenoise) afresh
    assert response.status_code == 200
    assert "max-age=315360000" in response["Cache-Control"] and "immutable" in response["Cache-Control"]
