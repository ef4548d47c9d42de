"""The security headers on pages, API answers and errors (the browser check is tests/e2e/test_csp.py)."""

from __future__ import annotations

import pytest
from django.urls import reverse

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("path", ["/login/", "/", "/api/v1/connections/", "/no-such-page/", "/api/v1/docs/"])
def test_every_answer_carries_the_security_headers(client, bob, path: str) -> None:
    client.force_login(bob)
    answer = client.get(path)
    policy = answer["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy and "object-src 'none'" in policy
    assert "unsafe-inline" not in policy and "unsafe-eval" not in policy
    assert answer["X-Frame-Options"] == "DENY"
    assert answer["X-Content-Type-Options"] == "nosniff"
    assert answer["Referrer-Policy"] == "same-origin"
    assert answer["Cross-Origin-Opener-Policy"] == "same-origin"
    assert "camera=()" in answer["Permissions-Policy"]
    assert answer["Cache-Control"].startswith("private") or "no-store" in answer["Cache-Control"]


def test_the_api_docs_page_has_no_inline_script_and_a_nonce_on_its_style(client, bob) -> None:
    client.force_login(bob)
    answer = client.get(reverse("api-docs"))
    html = answer.content.decode()
    nonce = answer["Content-Security-Policy"].split("'nonce-")[1].split("'")[0]
    assert f'<style nonce="{nonce}">' in html
    assert "<script>" not in html  # Swagger UI's settings come from a script URL of their own


def test_htmx_runs_without_eval(client, bob) -> None:
    client.force_login(bob)
    html = client.get("/").content.decode()
    assert '"allowEval": false' in html and '"includeIndicatorStyles": false' in html
    assert '"selfRequestsOnly": true' in html
