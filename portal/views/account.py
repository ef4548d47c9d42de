"""The account page: personal API tokens."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render

from portal import tokens
from portal.requests import AuthenticatedHttpRequest

NEW_TOKEN_SESSION_KEY = "portal_new_api_token"  # noqa: S105 - the session entry's name, not a secret


@login_required
def account(request: AuthenticatedHttpRequest) -> HttpResponse:
    if request.method == "POST":
        if request.POST.get("revoke"):
            token = request.user.api_tokens.filter(pk=request.POST["revoke"]).first()
            if token is None:
                raise Http404("No such token")
            tokens.token_revoke(token=token, actor=request.user)
            messages.success(request, f"Token {token.name} revoked: it no longer works.")
            return redirect("portal:account")
        name = (request.POST.get("name") or "").strip()
        days = request.POST.get("days") or str(settings.PORTAL_TOKEN_DEFAULT_DAYS)
        if not name:
            messages.error(request, "Give the token a name, e.g. the script that will use it.")
        elif not days.isdigit():
            messages.error(request, "Choose how many days the token lives.")
        else:
            try:
                _token, new_key = tokens.token_create(user=request.user, name=name, expires_in_days=int(days))
            except ValidationError as exc:
                messages.error(request, "; ".join(exc.messages))
            else:
                # Post/redirect/get: a reload must not create a second token. The key waits in the
                # server-side session for the next page only, then is gone.
                request.session[NEW_TOKEN_SESSION_KEY] = new_key
        return redirect("portal:account")
    new_key = request.session.pop(NEW_TOKEN_SESSION_KEY, None)
    return render(
        request,
        "portal/account.html",
        {
            "tokens": request.user.api_tokens.all(),
            "new_key": new_key,
            "expiry_choices": [30, 90, 180, 365],
            "default_days": settings.PORTAL_TOKEN_DEFAULT_DAYS,
        },
    )
