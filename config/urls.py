from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from portal.operations.health import ReadinessView, liveness
from portal.security.password_reset import ThrottledPasswordResetView

urlpatterns = [
    # HEALTH: liveness and readiness for load balancers (portal/health.py), no login
    path("healthz", liveness, name="healthz"),
    path("readyz", ReadinessView.as_view(), name="readyz"),
    path("login/", auth_views.LoginView.as_view(redirect_authenticated_user=True), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    # Django's password reset by email (templates/registration/password_reset_*)
    path("password-reset/", ThrottledPasswordResetView.as_view(), name="password_reset"),
    path("password-reset/sent/", auth_views.PasswordResetDoneView.as_view(), name="password_reset_done"),
    path(
        "password-reset/<uidb64>/<token>/",
        auth_views.PasswordResetConfirmView.as_view(),
        name="password_reset_confirm",
    ),
    path("password-reset/done/", auth_views.PasswordResetCompleteView.as_view(), name="password_reset_complete"),
    path("admin/", admin.site.urls),
    path("api/v1/", include("portal.api.urls")),
    path("", include("portal.urls")),
]

handler404 = "portal.views.errors.not_found"
handler403 = "portal.views.errors.permission_denied"
