"""Production: every secret comes from the environment, with no default."""

import os

from config.logging import logging_config
from config.settings.base import *  # noqa: F403
from config.settings.base import DATABASES, REDIS_URL, REST_FRAMEWORK, STORAGES, env, env_bool
from config.settings.checks import require_credential_keys, require_strong_secret_key

SECRET_KEY = env.str("DJANGO_SECRET_KEY")
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS")
DATABASES["default"] = env.db("DATABASE_URL")
DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=60)
PORTAL_CREDENTIAL_KEYS = env.list("PORTAL_CREDENTIAL_KEYS")

# DEPLOY CHECKS
# Refuse to start on a secret that would fail later or silently: a weak SECRET_KEY, credential keys
# that are not Fernet keys (docs/security.md). `manage.py check --deploy --fail-level WARNING` passes.
require_strong_secret_key(SECRET_KEY)
require_credential_keys(PORTAL_CREDENTIAL_KEYS)

# BEHIND A PROXY (base.py has the variables): production trusts the proxy's X-Forwarded-Proto by default.
if "DJANGO_SECURE_PROXY_SSL_HEADER" not in os.environ:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env_bool("DJANGO_SECURE_SSL_REDIRECT", True)
# Load balancers probe over plain HTTP.
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$"]
# Off only for a rehearsal over plain HTTP on loopback (tests/cluster): browsers drop secure cookies there.
SESSION_COOKIE_SECURE = env_bool("DJANGO_SECURE_COOKIES", True)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SECURE_HSTS_SECONDS = env.int("DJANGO_SECURE_HSTS_SECONDS", default=31_536_000)  # one year
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS", True)
SECURE_HSTS_PRELOAD = env_bool("DJANGO_SECURE_HSTS_PRELOAD", True)
# PORTAL_TRUSTED_PROXIES (base.py): behind a load balancer, list its addresses, or every client shares its IP.
# No DRF browsable API in production: JSON only.
REST_FRAMEWORK = {**REST_FRAMEWORK, "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"]}
# Throttle counters and lockouts shared by every web process.
CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}}
STORAGES = {
    # S3 when PORTAL_S3_BUCKET is set (base.py # OBJECT STORAGE); else DJANGO_DEFAULT_STORAGE (one host only).
    "default": STORAGES["default"]
    if "PORTAL_S3_BUCKET" in os.environ
    else {"BACKEND": env.str("DJANGO_DEFAULT_STORAGE", default="django.core.files.storage.FileSystemStorage")},
    # Hashed names (far-future cache headers) and gzip/brotli copies; the rehearsal skips compressing
    # (django.contrib.staticfiles.storage.ManifestStaticFilesStorage) to save a minute of CPU.
    "staticfiles": {
        "BACKEND": env.str(
            "DJANGO_STATICFILES_BACKEND", default="whitenoise.storage.CompressedManifestStaticFilesStorage"
        )
    },
}
EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"

# LOGGING
# JSON lines, one per event, for the log collector (PORTAL_LOG_FORMAT=console to read them by eye).
PORTAL_LOG_FORMAT = env.str("PORTAL_LOG_FORMAT", default="json")
LOGGING = logging_config(json_logs=PORTAL_LOG_FORMAT == "json", level=env.str("PORTAL_LOG_LEVEL", default="INFO"))

# OPERATIONS
PORTAL_METRICS_REQUIRE_TOKEN = env_bool("PORTAL_METRICS_REQUIRE_TOKEN", True)
