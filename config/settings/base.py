"""Settings shared by every environment. Environment variables are read with django-environ."""

from __future__ import annotations

from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent.parent
env = environ.Env()

if env.bool("DJANGO_READ_DOT_ENV_FILE", default=False):
    env.read_env(str(BASE_DIR / ".env"))


def env_bool(name: str, default: bool) -> bool:
    """Strict boolean: anything but the usual spellings is a configuration error (healthchecks' envbool)."""
    raw = env.str(name, default=None)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off", ""}:
        return False
    raise ImproperlyConfigured(f"{name} must be a boolean, got {raw!r}")


# GENERAL
# https://docs.djangoproject.com/en/6.0/ref/settings/
DEBUG = env_bool("DJANGO_DEBUG", False)
TIME_ZONE = "UTC"
LANGUAGE_CODE = "en-us"
USE_I18N = False
USE_TZ = True
SITE_NAME = "Data release portal"

# DATABASES
# https://docs.djangoproject.com/en/6.0/ref/settings/#databases
# SQLite by default; DATABASE_URL (postgres://...) switches to PostgreSQL.
DATABASES = {
    "default": env.db(
        "DATABASE_URL",
        default=f"sqlite:///{BASE_DIR / 'var' / 'portal.sqlite3'}",
    )
}
DATABASES["default"]["ATOMIC_REQUESTS"] = False
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # A web process, a worker and beat share the file: WAL and IMMEDIATE transactions
    # avoid "database is locked" under that light concurrency.
    DATABASES["default"]["OPTIONS"] = {
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# URLS
ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

# APPS
INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django_htmx",
    "django_filters",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_celery_beat",
    "portal",
]

# AUTHENTICATION
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "portal:dashboard"
LOGOUT_REDIRECT_URL = "login"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

# MIDDLEWARE
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
]

# STATIC AND MEDIA
# https://docs.djangoproject.com/en/6.0/ref/settings/#storages
STATIC_URL = "/static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
MEDIA_ROOT = Path(env.str("PORTAL_MEDIA_ROOT", default=str(BASE_DIR / "var" / "media")))
MEDIA_URL = "/media/"  # never served: uploads are read by workers through the storage API
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
# Uploads over 2.5 MB spill to a temporary file instead of memory.
FILE_UPLOAD_MAX_MEMORY_SIZE = 2_621_440
DATA_UPLOAD_MAX_MEMORY_SIZE = 10_485_760
PORTAL_UPLOAD_MAX_BYTES = env.int("PORTAL_UPLOAD_MAX_BYTES", default=5 * 1024**3)
PORTAL_UPLOAD_EXTENSIONS = env.list(
    "PORTAL_UPLOAD_EXTENSIONS",
    default=["csv", "tsv", "json", "xlsx", "xls", "parquet", "zip", "gz", "txt", "xml"],
)

# TEMPLATES
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    }
]

# SECURITY
SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = False  # htmx reads the token from the page, not the cookie
X_FRAME_OPTIONS = "DENY"

# CREDENTIAL ENCRYPTION
# Fernet keys of their own (never SECRET_KEY). The first encrypts; all decrypt, so keys can rotate:
# put the new key first, run `manage.py rotate_credential_keys`, then drop the old one.
PORTAL_CREDENTIAL_KEYS: list[str] = env.list("PORTAL_CREDENTIAL_KEYS", default=[])

# LOGGING
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"verbose": {"format": "%(levelname)s %(asctime)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "verbose"}},
    "root": {"level": "INFO", "handlers": ["console"]},
    "loggers": {"httpx": {"level": "WARNING"}, "httpcore": {"level": "WARNING"}},
}

# CELERY
# https://docs.celeryq.dev/en/stable/userguide/configuration.html
REDIS_URL = env.str("REDIS_URL", default="redis://127.0.0.1:6379/0")
CELERY_BROKER_URL = REDIS_URL
CELERY_RESULT_BACKEND = None  # the UI reads the database, never the result backend
CELERY_TASK_IGNORE_RESULT = True
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_TIMEZONE = TIME_ZONE
CELERY_TASK_TIME_LIMIT = 15 * 60
CELERY_TASK_SOFT_TIME_LIMIT = 14 * 60
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_BEAT_SCHEDULE = {
    "release-sweeper": {
        "task": "portal.tasks.release_sweep_task",
        "schedule": env.float("PORTAL_SWEEP_SECONDS", default=5.0),
    },
}

# RELEASE ENGINE
# https://docs/architecture.md#release-engine
PORTAL_ENGINE = {
    # First check of a waiting step, then x2 each time, capped.
    "POLL_INITIAL_SECONDS": env.float("PORTAL_POLL_INITIAL_SECONDS", default=2.0),
    "POLL_MAX_SECONDS": env.float("PORTAL_POLL_MAX_SECONDS", default=60.0),
    # Transient errors (5xx, 429, timeouts): retried with capped, jittered backoff.
    "RETRY_BASE_SECONDS": env.float("PORTAL_RETRY_BASE_SECONDS", default=5.0),
    "RETRY_MAX_SECONDS": env.float("PORTAL_RETRY_MAX_SECONDS", default=300.0),
    "MAX_ATTEMPTS": env.int("PORTAL_MAX_ATTEMPTS", default=5),
    # A worker that claims a step holds it this long; past it the sweeper takes over.
    "LEASE_SECONDS": env.float("PORTAL_LEASE_SECONDS", default=120.0),
    # A step is overdue when its next check is this late; the sweeper re-dispatches it.
    "SWEEP_GRACE_SECONDS": env.float("PORTAL_SWEEP_GRACE_SECONDS", default=30.0),
    # RELEASE ENGINE UNDER FAULTS (issue 14, docs/engine.md)
    # The longest Celery countdown; also capped at half the visibility timeout. Longer
    # waits stay in the database and the sweeper's due-work scan picks them up.
    "MAX_COUNTDOWN_SECONDS": env.float("PORTAL_MAX_COUNTDOWN_SECONDS", default=300.0),
    # A dispatched task this late, while the queue is not empty, is taken as lost.
    "LOST_SECONDS": env.float("PORTAL_LOST_SECONDS", default=900.0),
    # Releases the sweeper dispatches per run, at most.
    "SWEEP_BATCH": env.int("PORTAL_SWEEP_BATCH", default=2000),
}

# CELERY UNDER FAULTS (issue 14, docs/engine.md)
# https://docs.celeryq.dev/en/stable/userguide/configuration.html#broker-settings
# Reconnect to the broker forever; never cancel a running task when the connection drops
# (its work is fenced in the database, and acks_late redelivers it only after the
# visibility timeout, which is set explicitly and far above the longest countdown).
CELERY_BROKER_CONNECTION_RETRY = True
CELERY_BROKER_CONNECTION_MAX_RETRIES = None
CELERY_WORKER_CANCEL_LONG_RUNNING_TASKS_ON_CONNECTION_LOSS = False
CELERY_BROKER_CONNECTION_TIMEOUT = 2.0
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": env.int("PORTAL_BROKER_VISIBILITY_TIMEOUT", default=3600),
    "socket_connect_timeout": 2,
    "socket_timeout": 10,
    "retry_on_timeout": True,
    "health_check_interval": 10,
}
# The sweeper runs on a queue of its own, so a backlog of release tasks cannot delay it;
# notifications too, so that they neither wait behind releases nor hold them up.
# A worker started without -Q consumes every queue.
CELERY_TASK_DEFAULT_QUEUE = "celery"
CELERY_TASK_QUEUES = {"celery": {}, "sweep": {}, "notify": {}}
CELERY_TASK_ROUTES = {
    "portal.tasks.release_sweep_task": {"queue": "sweep"},
    "portal.tasks.notify_release_task": {"queue": "notify"},
    "portal.tasks.notification_deliver_task": {"queue": "notify"},
}

# HTTP TO PLATFORMS
PORTAL_HTTP_TIMEOUT_SECONDS = env.float("PORTAL_HTTP_TIMEOUT_SECONDS", default=30.0)

# REST FRAMEWORK
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "portal.api_auth.ApiTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "portal.api_schema.PortalAutoSchema",
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser", "rest_framework.parsers.MultiPartParser"],
    "EXCEPTION_HANDLER": "portal.apis.exception_handler",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Data release portal API",
    "DESCRIPTION": "Upload files, trigger releases and follow them on every platform the portal knows.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
}

# NOTIFICATIONS
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="portal@localhost")
PORTAL_BASE_URL = env.str("PORTAL_BASE_URL", default="http://127.0.0.1:8000")
PORTAL_WEBHOOK_TIMEOUT_SECONDS = env.float("PORTAL_WEBHOOK_TIMEOUT_SECONDS", default=10.0)
PORTAL_WEBHOOK_MAX_ATTEMPTS = env.int("PORTAL_WEBHOOK_MAX_ATTEMPTS", default=5)
PORTAL_WEBHOOK_RETRY_BASE_SECONDS = env.float("PORTAL_WEBHOOK_RETRY_BASE_SECONDS", default=30.0)
# Webhooks to loopback or private addresses are refused unless this is set (local runs, tests).
PORTAL_WEBHOOK_ALLOW_PRIVATE = env_bool("PORTAL_WEBHOOK_ALLOW_PRIVATE", False)

# DEMO
# Base URL of the bundled platform simulators, used by `manage.py seed_demo`.
PORTAL_SIMULATOR_URL = env.str("PORTAL_SIMULATOR_URL", default="http://127.0.0.1:8100")
