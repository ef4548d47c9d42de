from __future__ import annotations

import os
import subprocess
import sys

import pytest
from django.apps import apps
from django.contrib import admin

from tests.simulator import ROOT


def test_every_portal_model_is_in_the_admin_without_its_secrets():
    for model in apps.get_app_config("portal").get_models():
        assert model in admin.site._registry, f"{model.__name__} is not in the admin"
    for model, hidden in (
        ("Connection", "credentials_encrypted"),
        ("ApiToken", "key_hash"),
        ("NotificationChannel", "secret_encrypted"),
    ):
        model_admin = admin.site._registry[apps.get_model("portal", model)]
        assert hidden in (model_admin.exclude or []), f"{model}.{hidden} must not be in the admin"


STRONG_KEY = "k3-Vq9xZ_r7Lp2Wm8Nc4Bt6Yh1Js5Dg0Fa-e9Qu2Io7Pl3Kx8Zm"


@pytest.mark.parametrize(
    "missing", ["DJANGO_SECRET_KEY", "PORTAL_CREDENTIAL_KEYS", "DATABASE_URL", "DJANGO_ALLOWED_HOSTS"]
)
def test_production_settings_refuse_to_start_without_their_secrets(missing):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "PORTAL_", "DATABASE_URL"))}
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "config.settings.production",
            "DJANGO_SECRET_KEY": STRONG_KEY,
            "DJANGO_ALLOWED_HOSTS": "portal.example",
            "DATABASE_URL": "postgres://u@h/db",
            "PORTAL_CREDENTIAL_KEYS": "pbo6sn4W8bWgaS_TXJcOBegpfdMBa6i_KcMu_4Z9xdg=",
        }
    )
    del env[missing]
    result = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert result.returncode != 0 and "ImproperlyConfigured" in result.stderr
    env[missing] = (
        "pbo6sn4W8bWgaS_TXJcOBegpfdMBa6i_KcMu_4Z9xdg="
        if missing == "PORTAL_CREDENTIAL_KEYS"
        else ("postgres://u@h/db" if missing == "DATABASE_URL" else STRONG_KEY)
    )
    assert (
        subprocess.run(
            [sys.executable, "-c", "import django; django.setup()"], cwd=ROOT, env=env, capture_output=True
        ).returncode
        == 0
    )


@pytest.mark.django_db
def test_every_admin_list_renders(client, alice, toucan_mapping, csv_upload):
    from django.urls import reverse

    alice.is_staff = alice.is_superuser = True
    alice.save()
    client.force_login(alice)
    for model in apps.get_app_config("portal").get_models():
        url = reverse(f"admin:portal_{model._meta.model_name}_changelist")
        assert client.get(url).status_code == 200, url
