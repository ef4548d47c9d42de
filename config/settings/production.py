"""Production: every secret comes from the environment, with no default."""

from config.logging import logging_config

from .base import *  # noqa: F403
from .base import DATABASES, env, env_bool

SECRET_KEY = env.str("DJANGO_SECRET_KEY")
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS")
DATABASES["default"] = env.db("DATABASE_URL")
DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=60)
PORTAL_CREDENTIAL_KEYS = env.list("PORTAL_CREDENTIAL_KEYS")
if not PORTAL_CREDENTIAL_KEYS:
    from django.core.exceptions import ImproperlyConfigured

    raise ImproperlyConfigured("PORTAL_CREDENTIAL_KEYS must name at least one Fernet key")

SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env_bool("DJANGO_SECURE_SSL_REDIRECT", True)
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
SECURE_HSTS_SECONDS = 60
STORAGES = {
    "default": {"BACKEND": env.str("DJANGO_DEFAULT_STORAGE", default="django.core.files.storage.FileSystemStorage")},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}
EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"

# LOGGING
# JSON lines, one per event, for the log collector (PORTAL_LOG_FORMAT=console to read them by eye).
PORTAL_LOG_FORMAT = env.str("PORTAL_LOG_FORMAT", default="json")
LOGGING = logging_config(json_logs=PORTAL_LOG_FORMAT == "json", level=env.str("PORTAL_LOG_LEVEL", default="INFO"))

# OPERATIONS
PORTAL_METRICS_REQUIRE_TOKEN = env_bool("PORTAL_METRICS_REQUIRE_TOKEN", True)
