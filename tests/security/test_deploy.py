"""Production settings: the deploy check passes; weak or unreadable secrets stop the start (in a subprocess)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.urls import reverse

ROOT = Path(__file__).resolve().parents[2]
STRONG_KEY = "k3-Vq9xZ_r7Lp2Wm8Nc4Bt6Yh1Js5Dg0Fa-e9Qu2Io7Pl3Kx8Zm"
FERNET = "pbo6sn4W8bWgaS_TXJcOBegpfdMBa6i_KcMu_4Z9xdg="


def production_env(**overrides: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "PORTAL_", "DATABASE_URL"))}
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "config.settings.production",
            "DJANGO_SECRET_KEY": STRONG_KEY,
            "DJANGO_ALLOWED_HOSTS": "portal.example",
            "DATABASE_URL": "postgres://u@h/db",
            "PORTAL_CREDENTIAL_KEYS": FERNET,
        }
    )
    env.update(overrides)
    return env


def run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False
    )


def test_the_deploy_check_passes_at_warning_level() -> None:
    result = run(production_env(), "manage.py", "check", "--deploy", "--fail-level", "WARNING")
    assert result.returncode == 0, result.stderr + result.stdout


def test_hsts_preload_is_configurable_and_the_check_says_so() -> None:
    result = run(
        production_env(DJANGO_SECURE_HSTS_PRELOAD="false"), "manage.py", "check", "--deploy", "--fail-level", "WARNING"
    )
    assert result.returncode != 0 and "security.W021" in result.stderr + result.stdout


@pytest.mark.parametrize(
    ("name", "value", "says"),
    [
        ("DJANGO_SECRET_KEY", "", "DJANGO_SECRET_KEY is empty or weak"),
        ("DJANGO_SECRET_KEY", "x" * 60, "DJANGO_SECRET_KEY is empty or weak"),
        ("DJANGO_SECRET_KEY", "django-insecure-" + STRONG_KEY, "DJANGO_SECRET_KEY is empty or weak"),
        ("PORTAL_CREDENTIAL_KEYS", "", "must name at least one Fernet key"),
        ("PORTAL_CREDENTIAL_KEYS", "not-a-key", "key 1 is not a Fernet key"),
        ("PORTAL_CREDENTIAL_KEYS", f"{FERNET},short", "key 2 is not a Fernet key"),
    ],
)
def test_production_refuses_to_start_on_a_weak_or_unreadable_secret(name: str, value: str, says: str) -> None:
    result = run(production_env(**{name: value}), "-c", "import django; django.setup()")
    assert result.returncode != 0 and "ImproperlyConfigured" in result.stderr and says in result.stderr
    assert value not in result.stderr or not value  # the bad value itself is not echoed


def test_production_answers_json_only_no_browsable_api() -> None:
    code = (
        "import django; django.setup(); from django.conf import settings; "
        "print(settings.REST_FRAMEWORK['DEFAULT_RENDERER_CLASSES'])"
    )
    result = run(production_env(), "-c", code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "['rest_framework.renderers.JSONRenderer']"


@pytest.mark.django_db
@pytest.mark.parametrize("name", ["api-schema", "api-docs"])
def test_the_api_schema_and_docs_need_a_login(client, bob, name: str) -> None:
    assert client.get(reverse(name)).status_code in (401, 403)
    client.force_login(bob)
    assert client.get(reverse(name)).status_code == 200


@pytest.mark.django_db
def test_the_admin_is_for_staff_only(client, alice) -> None:
    client.force_login(alice)  # a team admin, not staff
    answer = client.get("/admin/")
    assert answer.status_code == 302 and "/admin/login/" in answer["Location"]
    alice.is_staff = True
    alice.save()
    assert client.get("/admin/").status_code == 200
