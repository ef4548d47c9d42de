"""Settings shared by every environment. Environment variables are read with django-environ."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import environ
from celery.schedules import crontab
from django.core.exceptions import ImproperlyConfigured
from django.utils.csp import CSP

from config.logging import configure_structlog, logging_config
from config.storage import s3_storage

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
    "health_check",
    "django_structlog",
    "axes",
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
    "django.middleware.csp.ContentSecurityPolicyMiddleware",
    "portal.security.headers.SecurityHeadersMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "django_structlog.middlewares.RequestMiddleware",
    "portal.operations.log_context.LogContextMiddleware",
    "axes.middleware.AxesMiddleware",  # last, as django-axes asks
]

# BEHIND A PROXY (docs/deploy.md#behind-a-proxy)
# https://docs.djangoproject.com/en/6.0/ref/settings/#secure-proxy-ssl-header
# Every one off unless set: a header is believed only when a proxy we run sets it.
# "HTTP_X_FORWARDED_PROTO,https": the proxy says the browser used HTTPS.
_ssl_header = env.list("DJANGO_SECURE_PROXY_SSL_HEADER", default=[])
if _ssl_header and len(_ssl_header) != 2:
    raise ImproperlyConfigured(
        "DJANGO_SECURE_PROXY_SSL_HEADER must be a header and a value, e.g. HTTP_X_FORWARDED_PROTO,https"
    )
SECURE_PROXY_SSL_HEADER = (_ssl_header[0], _ssl_header[1]) if _ssl_header else None
# https://origin.example.com[,...]: the origins forms may be posted from (the public URL behind the proxy).
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])
USE_X_FORWARDED_HOST = env_bool("DJANGO_USE_X_FORWARDED_HOST", False)
# Addresses or networks of our proxies (127.0.0.1,10.0.0.0/8): only their X-Forwarded-For names the client
# (portal/proxy.py). Empty: REMOTE_ADDR is the socket's peer.
PORTAL_TRUSTED_PROXIES = env.list("PORTAL_TRUSTED_PROXIES", default=[])
MIDDLEWARE.insert(0, "portal.security.proxy.TrustedProxyMiddleware")
# Static files: whitenoise serves the hashed names (ManifestStaticFilesStorage in production) with
# "max-age=315360000, immutable"; other files for WHITENOISE_MAX_AGE.
WHITENOISE_MAX_AGE = env.int("WHITENOISE_MAX_AGE", default=0 if DEBUG else 3600)

# AUTHENTICATION HARDENING
# https://django-axes.readthedocs.io/ — lockout per (user, client IP) with a cool-off; docs/security.md
AUTHENTICATION_BACKENDS = ["axes.backends.AxesStandaloneBackend", "django.contrib.auth.backends.ModelBackend"]
AXES_FAILURE_LIMIT = env.int("PORTAL_LOGIN_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = timedelta(minutes=env.float("PORTAL_LOGIN_COOLOFF_MINUTES", default=15.0))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
# The client IP: REMOTE_ADDR, or X-Forwarded-For only when REMOTE_ADDR is one of these proxies (CIDRs).
AXES_CLIENT_IP_CALLABLE = "portal.security.client_ip.client_ip"
# API tokens: the expiry offered by default at creation, and how often last use is written.
PORTAL_TOKEN_DEFAULT_DAYS = env.int("PORTAL_TOKEN_DEFAULT_DAYS", default=90)
PORTAL_TOKEN_MAX_DAYS = env.int("PORTAL_TOKEN_MAX_DAYS", default=366)
PORTAL_TOKEN_LAST_USED_EVERY_SECONDS = env.int("PORTAL_TOKEN_LAST_USED_EVERY_SECONDS", default=60)
PASSWORD_RESET_TIMEOUT = 60 * 60 * 3  # a reset link works for 3 hours
PORTAL_PASSWORD_RESETS_PER_HOUR = env.int("PORTAL_PASSWORD_RESETS_PER_HOUR", default=5)

# STATIC AND MEDIA
# https://docs.djangoproject.com/en/6.0/ref/settings/#storages
STATIC_URL = "/static/"
STATIC_ROOT = Path(env.str("DJANGO_STATIC_ROOT", default=str(BASE_DIR / "staticfiles")))
STATICFILES_DIRS = [BASE_DIR / "static"]
MEDIA_ROOT = Path(env.str("PORTAL_MEDIA_ROOT", default=str(BASE_DIR / "var" / "media")))
MEDIA_URL = "/media/"  # never served: uploads are read by workers through the storage API
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
# OBJECT STORAGE (S3)
# https://django-storages.readthedocs.io/en/latest/backends/amazon-S3.html
# PORTAL_S3_BUCKET switches uploads to S3 or MinIO (config/storage.py reads every PORTAL_S3_* variable):
# web and worker hosts then share files with no shared disk. Code uses only the storage API, never paths.
_s3 = s3_storage(os.environ)
if _s3 is not None:
    STORAGES["default"] = _s3

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
                "django.template.context_processors.csp",
            ],
        },
    }
]

# SECURITY
SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = False  # htmx reads the token from the page, not the cookie
X_FRAME_OPTIONS = "DENY"

# CONTENT SECURITY POLICY
# Django's built-in CSP (django.middleware.csp) on every response: scripts and styles from this site only,
# plus a per-request nonce where a page needs an inline block (the API docs' style). No 'unsafe-inline',
# no 'unsafe-eval': htmx runs with allowEval false (templates/base.html). docs/security.md.
SECURE_CSP = {
    "default-src": [CSP.SELF],
    "script-src": [CSP.SELF, CSP.NONCE],
    "style-src": [CSP.SELF, CSP.NONCE],
    "img-src": [CSP.SELF, "data:"],
    "font-src": [CSP.SELF],
    "connect-src": [CSP.SELF],
    "object-src": [CSP.NONE],
    "base-uri": [CSP.NONE],
    "form-action": [CSP.SELF],
    "frame-ancestors": [CSP.NONE],
}
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
SECURE_CONTENT_TYPE_NOSNIFF = True
PORTAL_PERMISSIONS_POLICY = "camera=(), microphone=(), geolocation=(), payment=(), usb=(), interest-cohort=()"

# CREDENTIAL ENCRYPTION
# Fernet keys of their own (never SECRET_KEY). The first encrypts; all decrypt, so keys can rotate:
# put the new key first, run `manage.py rotate_credential_keys`, then drop the old one.
PORTAL_CREDENTIAL_KEYS: list[str] = env.list("PORTAL_CREDENTIAL_KEYS", default=[])

# LOGGING
# https://django-structlog.readthedocs.io/ — structured logs (config/logging.py): JSON lines when
# PORTAL_LOG_FORMAT=json (the production default), readable key=value text otherwise.
PORTAL_LOG_FORMAT = env.str("PORTAL_LOG_FORMAT", default="console")
if PORTAL_LOG_FORMAT not in ("json", "console"):
    raise ImproperlyConfigured(f"PORTAL_LOG_FORMAT must be json or console, got {PORTAL_LOG_FORMAT!r}")
PORTAL_LOG_LEVEL = env.str("PORTAL_LOG_LEVEL", default="INFO")
LOGGING = logging_config(json_logs=PORTAL_LOG_FORMAT == "json", level=PORTAL_LOG_LEVEL)
configure_structlog()
DJANGO_STRUCTLOG_CELERY_ENABLED = True  # the request id travels in task headers into the worker
DJANGO_STRUCTLOG_IP_LOGGING_ENABLED = False  # a person's address is not needed to debug a release

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
# ONE SCHEDULER (docs/deploy.md#one-scheduler): django-celery-beat behind a lease lock in Redis, so a
# second beat started by mistake waits, and takes over within PORTAL_BEAT_LOCK_SECONDS if the first dies.
CELERY_BEAT_SCHEDULER = "portal.operations.beat:LockedDatabaseScheduler"
PORTAL_BEAT_LOCK_SECONDS = env.float("PORTAL_BEAT_LOCK_SECONDS", default=30.0)
CELERY_WORKER_HIJACK_ROOT_LOGGER = False  # the worker logs through LOGGING (structured), not Celery's format
CELERY_BEAT_SCHEDULE = {
    "release-sweeper": {
        "task": "portal.tasks.release_sweep_task",
        "schedule": env.float("PORTAL_SWEEP_SECONDS", default=5.0),
    },
    "ops-alerts": {
        "task": "portal.tasks.alerts_check_task",
        "schedule": env.float("PORTAL_ALERT_CHECK_SECONDS", default=60.0),
    },
    # Connections are re-tested by the daily "connection-health" entry (CREDENTIAL HEALTH below);
    # one that starts failing raises the CONNECTION_FAILING alert.
}

# HEALTH (portal/health.py: /healthz, /readyz) AND HEARTBEATS (portal/heartbeats.py)
# https://codingjoe.dev/django-health-check/
# Workers record a heartbeat in Redis this often; /readyz fails when none is younger than the max age.
PORTAL_HEARTBEAT_SECONDS = env.float("PORTAL_HEARTBEAT_SECONDS", default=10.0)
PORTAL_HEALTH_WORKER_MAX_AGE = env.float("PORTAL_HEALTH_WORKER_MAX_AGE", default=60.0)
# Beat ticks at least every PORTAL_BEAT_LOCK_SECONDS / 3 (and every 5 s by default).
PORTAL_HEALTH_BEAT_MAX_AGE = env.float("PORTAL_HEALTH_BEAT_MAX_AGE", default=60.0)

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
CELERY_TASK_QUEUES: dict[str, dict[str, str]] = {"celery": {}, "sweep": {}, "notify": {}}
CELERY_TASK_ROUTES = {
    "portal.tasks.release_sweep_task": {"queue": "sweep"},
    "portal.tasks.notify_release_task": {"queue": "notify"},
    "portal.tasks.notification_deliver_task": {"queue": "notify"},
}

# HTTP TO PLATFORMS
# Each network operation (connect, each read, each write) of a platform call, in seconds:
# in workers (releases, mutating actions, connection tests)...
PORTAL_HTTP_TIMEOUT_SECONDS = env.float("PORTAL_HTTP_TIMEOUT_SECONDS", default=30.0)
# ...and for reads made inside a web request (browse, read-only actions, downloads), which a
# person waits on: Connection.connector(interactive=True). See docs/decisions.md.
PORTAL_HTTP_READ_TIMEOUT_SECONDS = env.float("PORTAL_HTTP_READ_TIMEOUT_SECONDS", default=8.0)

# REST FRAMEWORK
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "portal.api.auth.ApiTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "portal.api.schema.PortalAutoSchema",
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser", "rest_framework.parsers.MultiPartParser"],
    "EXCEPTION_HANDLER": "portal.api.common.exception_handler",
    # Throttles key on the client IP as portal.client_ip reads it (trusted proxies only).
    "DEFAULT_THROTTLE_CLASSES": ["portal.security.throttles.AnonThrottle", "portal.security.throttles.UserThrottle"],
    "DEFAULT_THROTTLE_RATES": {
        "anon": env.str("PORTAL_THROTTLE_ANON", default="60/min"),
        "user": env.str("PORTAL_THROTTLE_USER", default="1200/min"),
        "failed_token": env.str("PORTAL_THROTTLE_FAILED_TOKEN", default="10/min"),
    },
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
    # The schema and its docs are for logged-in users (session or token) only.
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAuthenticated"],
}

# NOTIFICATIONS
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="portal@localhost")
PORTAL_BASE_URL = env.str("PORTAL_BASE_URL", default="http://127.0.0.1:8000")
PORTAL_WEBHOOK_TIMEOUT_SECONDS = env.float("PORTAL_WEBHOOK_TIMEOUT_SECONDS", default=10.0)
PORTAL_WEBHOOK_MAX_ATTEMPTS = env.int("PORTAL_WEBHOOK_MAX_ATTEMPTS", default=5)
PORTAL_WEBHOOK_RETRY_BASE_SECONDS = env.float("PORTAL_WEBHOOK_RETRY_BASE_SECONDS", default=30.0)

# OUTBOUND POLICY
# Every outbound call (connections, webhooks) refuses loopback, private, link-local, multicast, reserved
# and unspecified addresses unless this lists the host name or a CIDR holding the address (docs/security.md).
PORTAL_OUTBOUND_ALLOW: list[str] = env.list("PORTAL_OUTBOUND_ALLOW", default=[])

# OPERATIONS
# docs/operations.md: heartbeats, metrics, error tracking, alerts.
# A worker's main process records a heartbeat this often.
PORTAL_HEARTBEAT_SECONDS = env.float("PORTAL_HEARTBEAT_SECONDS", default=10.0)
# /metrics (Prometheus text). With a token set, scrapers send "Authorization: Bearer <token>";
# production refuses to serve metrics without one (PORTAL_METRICS_REQUIRE_TOKEN).
PORTAL_METRICS_TOKEN = env.str("PORTAL_METRICS_TOKEN", default="")
PORTAL_METRICS_REQUIRE_TOKEN = env_bool("PORTAL_METRICS_REQUIRE_TOKEN", False)
# Figures counted in the database are shared between scrapes for this long (0: counted at every scrape).
PORTAL_METRICS_DB_CACHE_SECONDS = env.float("PORTAL_METRICS_DB_CACHE_SECONDS", default=15.0)
# Alerts (portal/alerts.py), sent through the teams' notification channels that take failures.
PORTAL_ALERTS = {
    "CHECK_SECONDS": env.float("PORTAL_ALERT_CHECK_SECONDS", default=60.0),
    "WORKER_SILENT_SECONDS": env.float("PORTAL_ALERT_WORKER_SILENT_SECONDS", default=300.0),
    "WORKER_FORGET_SECONDS": env.float("PORTAL_ALERT_WORKER_FORGET_SECONDS", default=86400.0),
    "BEAT_SILENT_SECONDS": env.float("PORTAL_ALERT_BEAT_SILENT_SECONDS", default=180.0),
    # Until steps have deadlines of their own: a step this late on its next check or lease.
    "STEP_OVERDUE_SECONDS": env.float("PORTAL_ALERT_STEP_OVERDUE_SECONDS", default=900.0),
    "ERROR_WINDOW_MINUTES": env.int("PORTAL_ALERT_ERROR_WINDOW_MINUTES", default=15),
    "ERROR_RATE": env.float("PORTAL_ALERT_ERROR_RATE", default=0.5),
    "ERROR_MIN_CALLS": env.int("PORTAL_ALERT_ERROR_MIN_CALLS", default=20),
    "DELIVERY_ATTEMPTS": env.int("PORTAL_ALERT_DELIVERY_ATTEMPTS", default=5),
    # Team names that get global alerts (workers, beat); empty: every team.
    "TEAMS": env.list("PORTAL_ALERT_TEAMS", default=[]),
}

# ERROR TRACKING
# https://docs.sentry.io/platforms/python/integrations/django/ — on only when SENTRY_DSN is set.
SENTRY_DSN = env.str("SENTRY_DSN", default="")
if SENTRY_DSN:
    # Imported only here: sentry-sdk and its integrations cost each process about 15 MB of memory.
    from config.sentry import init_sentry

    init_sentry(
        dsn=SENTRY_DSN,
        environment=env.str("SENTRY_ENVIRONMENT", default="production"),
        release=env.str("SENTRY_RELEASE", default=None),
        traces_sample_rate=env.float("SENTRY_TRACES_SAMPLE_RATE", default=0.0),
        include_local_variables=env_bool("SENTRY_INCLUDE_LOCAL_VARIABLES", False),
    )

# DEMO
# Base URL of the bundled platform simulators, used by `manage.py seed_demo`.
PORTAL_SIMULATOR_URL = env.str("PORTAL_SIMULATOR_URL", default="http://127.0.0.1:8100")

# RESUMABLE UPLOADS (tus)
# https://tus.io/protocols/resumable-upload ; docs/uploads.md
# The browser sends files in chunks of this size (Uppy's tus plugin): keep it under the proxy's body limit.
PORTAL_UPLOAD_CHUNK_BYTES = env.int("PORTAL_UPLOAD_CHUNK_BYTES", default=8 * 1024 * 1024)
# Unfinished uploads (and their parts or partial files) are deleted this long after they started.
PORTAL_UPLOAD_EXPIRE_SECONDS = env.int("PORTAL_UPLOAD_EXPIRE_SECONDS", default=24 * 3600)
# Bytes a team may keep in uploads, finished and in flight; 0 means no quota.
PORTAL_UPLOAD_TEAM_QUOTA_BYTES = env.int("PORTAL_UPLOAD_TEAM_QUOTA_BYTES", default=0)
# A PATCH holds its upload this long at most; a second PATCH meanwhile gets 423 and retries.
PORTAL_UPLOAD_LOCK_SECONDS = env.int("PORTAL_UPLOAD_LOCK_SECONDS", default=600)
CELERY_BEAT_SCHEDULE["upload-expiry"] = {
    "task": "portal.tasks.upload_expire_task",
    "schedule": env.float("PORTAL_UPLOAD_EXPIRY_SWEEP_SECONDS", default=600.0),
}
MIDDLEWARE.insert(
    MIDDLEWARE.index("django.contrib.auth.middleware.AuthenticationMiddleware") + 1,
    "portal.uploads.middleware.UploadLimitMiddleware",
)


# HISTORY AT SCALE
# docs/scale.md: the charts read daily roll-ups that this periodic task refreshes.
# https://docs.celeryq.dev/en/stable/userguide/periodic-tasks.html
CELERY_BEAT_SCHEDULE["release-rollup"] = {
    "task": "portal.tasks.release_rollup_task",
    "schedule": env.float("PORTAL_ROLLUP_SECONDS", default=300.0),
}


# CREDENTIAL HEALTH (docs/credential-health.md)
# Every enabled connection is tested again by Celery beat at this UTC hour each day, and at
# most once per PORTAL_HEALTH_MIN_HOURS (a manual test counts).
PORTAL_HEALTH_HOUR_UTC = env.int("PORTAL_HEALTH_HOUR_UTC", default=5)
PORTAL_HEALTH_MIN_HOURS = env.float("PORTAL_HEALTH_MIN_HOURS", default=20.0)
CELERY_BEAT_SCHEDULE["connection-health"] = {
    "task": "portal.tasks.connection_health_sweep_task",
    "schedule": crontab(hour=PORTAL_HEALTH_HOUR_UTC, minute=0),
}
