"""Production: every secret comes from the environment, with no default."""

import os

from .base import *  # noqa: F403
from .base import DATABASES, STORAGES, env, env_bool

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
    # S3 when PORTAL_S3_BUCKET is set (base.py # OBJECT STORAGE); else DJANGO_DEFAULT_STORAGE (one host only).
    "default": STORAGES["default"]
    if "PORTAL_S3_BUCKET" in os.environ
    else {"BACKEND": env.str("DJANGO_DEFAULT_STORAGE", default="django.core.files.storage.FileSystemStorage")},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}
EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
