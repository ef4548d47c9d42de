"""Authentication: lockout per user and IP with a cool-off, throttles, token expiry, password reset, audit."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from axes.models import AccessAttempt
from django.core import mail
from django.core.cache import cache
from django.urls import reverse
from django.utils import timezone

from portal import tokens
from portal.models import ApiToken, AuditEvent
from portal.security.throttles import FailedTokenThrottle, UserThrottle

pytestmark = pytest.mark.django_db

PASSWORD = "password"  # the factories' password


@pytest.fixture(autouse=True)
def _empty_cache():
    cache.clear()  # throttle counters live in the cache
    yield
    cache.clear()


def login(client, username: str, password: str, ip: str = "203.0.113.7", **extra: str):
    return client.post(reverse("login"), {"username": username, "password": password}, REMOTE_ADDR=ip, **extra)


def test_five_wrong_passwords_lock_the_user_out_from_that_address(client, alice, settings) -> None:
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        assert login(client, "alice", "wrong").status_code == 200
    assert login(client, "alice", "wrong").status_code == 429
    locked = login(client, "alice", PASSWORD)
    assert locked.status_code == 429 and "Too many failed attempts" in locked.content.decode()
    assert "_auth_user_id" not in client.session
    # Another address is not locked (the lockout is per user and IP)...
    assert login(client, "alice", PASSWORD, ip="198.51.100.9").status_code == 302
    assert AuditEvent.objects.filter(action="login-failed", object_repr="alice").count() >= settings.AXES_FAILURE_LIMIT
    assert AuditEvent.objects.filter(action="login", actor=alice).exists()


def test_the_lockout_ends_after_the_cool_off(client, alice, settings) -> None:
    for _ in range(settings.AXES_FAILURE_LIMIT):
        login(client, "alice", "wrong")
    assert login(client, "alice", PASSWORD).status_code == 429
    AccessAttempt.objects.update(attempt_time=timezone.now() - settings.AXES_COOLOFF_TIME - timedelta(seconds=1))
    assert login(client, "alice", PASSWORD).status_code == 302


def test_a_forwarded_for_header_from_an_untrusted_peer_is_ignored(client, alice, settings) -> None:
    settings.PORTAL_TRUSTED_PROXIES = ["10.0.0.0/8"]
    for n in range(settings.AXES_FAILURE_LIMIT):
        # A client rotating its X-Forwarded-For does not escape the lockout.
        login(client, "alice", "wrong", ip="203.0.113.7", HTTP_X_FORWARDED_FOR=f"192.0.2.{n}")
    assert login(client, "alice", PASSWORD, ip="203.0.113.7", HTTP_X_FORWARDED_FOR="192.0.2.99").status_code == 429
    # Through the trusted proxy, the forwarded address is the client's: another client is not locked.
    assert login(client, "alice", PASSWORD, ip="10.0.0.2", HTTP_X_FORWARDED_FOR="198.51.100.1").status_code == 302


def test_failed_token_attempts_are_throttled_per_address(client, alice, monkeypatch) -> None:
    monkeypatch.setattr(FailedTokenThrottle, "THROTTLE_RATES", {"failed_token": "5/min"})
    _token, key = tokens.token_create(user=alice, name="good")
    url = reverse("api-connections")
    for n in range(5):
        assert client.get(url, HTTP_AUTHORIZATION=f"Bearer drp_guess{n}").status_code == 401
    # Past the limit even a good token is answered 429 from that address, so guessing gets nowhere.
    assert client.get(url, HTTP_AUTHORIZATION=f"Bearer {key}").status_code == 429
    assert client.get(url, HTTP_AUTHORIZATION=f"Bearer {key}", REMOTE_ADDR="198.51.100.4").status_code == 200


def test_users_are_throttled(client, alice, monkeypatch) -> None:
    monkeypatch.setattr(UserThrottle, "THROTTLE_RATES", {"user": "3/min"})
    _token, key = tokens.token_create(user=alice, name="busy")
    answers = [client.get(reverse("api-connections"), HTTP_AUTHORIZATION=f"Bearer {key}").status_code for _ in range(4)]
    assert answers == [200, 200, 200, 429]


def test_tokens_expire_after_the_days_chosen_at_creation(client, alice, settings) -> None:
    token, key = tokens.token_create(user=alice, name="default")
    assert token.expires_at is not None
    assert abs((token.expires_at - timezone.now()) - timedelta(days=settings.PORTAL_TOKEN_DEFAULT_DAYS)) < timedelta(
        minutes=1
    )
    ApiToken.objects.filter(pk=token.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    answer = client.get(reverse("api-connections"), HTTP_AUTHORIZATION=f"Bearer {key}")
    assert answer.status_code == 401 and "expired" in answer.json()["detail"]


def test_the_account_page_creates_a_token_with_its_expiry_and_shows_its_last_use(client, alice) -> None:
    client.force_login(alice)
    # Post/redirect/get: the key is shown once, on the page the post redirects to.
    page = client.post(reverse("portal:account"), {"name": "nightly", "days": "30"}, follow=True)
    key = re.search(r"drp_[\w-]+", page.content.decode()).group(0)
    assert key not in client.get(reverse("portal:account")).content.decode()
    token = ApiToken.objects.get(name="nightly")
    assert timedelta(days=29) < token.expires_at - timezone.now() <= timedelta(days=30)
    assert client.get(reverse("api-connections"), HTTP_AUTHORIZATION=f"Bearer {key}").status_code == 200
    first_use = ApiToken.objects.get(pk=token.pk).last_used_at
    assert first_use is not None
    client.get(reverse("api-connections"), HTTP_AUTHORIZATION=f"Bearer {key}")
    assert ApiToken.objects.get(pk=token.pk).last_used_at == first_use  # writes throttled
    page = client.get(reverse("portal:account")).content.decode()
    assert first_use.strftime("%Y-%m-%d %H:%M") in page and token.expires_at.strftime("%Y-%m-%d") in page
    assert client.post(reverse("portal:account"), {"name": "forever", "days": "5000"}, follow=True).status_code == 200
    assert not ApiToken.objects.filter(name="forever").exists()
    client.post(reverse("portal:account"), {"revoke": token.pk})
    actions = list(AuditEvent.objects.filter(object_type="apitoken").values_list("action", flat=True))
    assert sorted(actions) == ["token-created", "token-revoked"]


def test_password_reset_by_email(client, alice) -> None:
    alice.email = "alice@example.org"
    alice.save()
    assert client.get(reverse("login")).content.decode().count(reverse("password_reset")) == 1
    response = client.post(reverse("password_reset"), {"email": "alice@example.org"})
    assert response.status_code == 302 and len(mail.outbox) == 1
    link = re.search(r"https?://[^/]+(/password-reset/\S+/)", mail.outbox[0].body).group(1)
    form = client.get(link, follow=True)
    assert "Choose a new password" in form.content.decode()
    new = "a-much-longer-passphrase-42"
    done = client.post(form.redirect_chain[-1][0], {"new_password1": new, "new_password2": new})
    assert done.status_code == 302
    assert login(client, "alice", new).status_code == 302
    # An unknown address says the same and sends nothing.
    assert client.post(reverse("password_reset"), {"email": "nobody@example.org"}).status_code == 302
    assert len(mail.outbox) == 1


def test_password_reset_requests_are_throttled_per_address(client, alice, settings):
    settings.PORTAL_PASSWORD_RESETS_PER_HOUR = 2
    alice.email = "alice@example.org"
    alice.save()
    answers = [
        client.post(reverse("password_reset"), {"email": "alice@example.org"}, REMOTE_ADDR="203.0.113.9").status_code
        for _ in range(3)
    ]
    assert answers == [302, 302, 429] and len(mail.outbox) == 2
    assert (
        client.post(reverse("password_reset"), {"email": "alice@example.org"}, REMOTE_ADDR="198.51.100.2").status_code
        == 302
    )
