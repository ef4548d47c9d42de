from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from portal import health

urlpatterns = [
    # HEALTH: liveness and readiness for load balancers (portal/health.py), no login
    path("healthz", health.liveness, name="healthz"),
    path("readyz", health.ReadinessView.as_view(), name="readyz"),
    path("login/", auth_views.LoginView.as_view(redirect_authenticated_user=True), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
    path("api/v1/", include("portal.api_urls")),
    path("", include("portal.urls")),
]

handler404 = "portal.views.not_found"
handler403 = "portal.views.permission_denied"
