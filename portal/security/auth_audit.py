"""Audit of logins, failed logins and logouts (Django's auth signals).

A failed login records the username as typed (never the password) and the client IP."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.dispatch import receiver
from django.http import HttpRequest

from portal.models import AuditEvent
from portal.security.client_ip import client_ip
from portal.services.audit import audit


@receiver(user_logged_in, dispatch_uid="portal-audit-login")
def _logged_in(sender: Any, request: HttpRequest | None, user: Any, **kwargs: Any) -> None:
    audit(actor=user, action="login", obj=user, changes={"ip": client_ip(request) if request else ""})


@receiver(user_logged_out, dispatch_uid="portal-audit-logout")
def _logged_out(sender: Any, request: HttpRequest | None, user: Any, **kwargs: Any) -> None:
    if user is not None:
        audit(actor=user, action="logout", obj=user, changes={"ip": client_ip(request) if request else ""})


@receiver(user_login_failed, dispatch_uid="portal-audit-login-failed")
def _login_failed(sender: Any, credentials: dict[str, Any], request: HttpRequest | None = None, **kwargs: Any) -> None:
    # Django already replaced the password in ``credentials`` by stars; only the username is kept.
    username = str(credentials.get(get_user_model().USERNAME_FIELD) or credentials.get("username") or "")[:150]
    user = get_user_model().objects.filter(**{get_user_model().USERNAME_FIELD: username}).first()
    AuditEvent.objects.create(
        actor=None,
        action="login-failed",
        object_type="user",
        object_id=str(user.pk) if user else "",
        object_repr=username[:200],
        changes={"ip": client_ip(request) if request else "", "known_user": user is not None},
    )
