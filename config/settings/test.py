"""Tests: real PostgreSQL and real Redis on this machine (see scripts/test.sh)."""

import os

from config.settings.base import *  # noqa: F403
from config.settings.base import PORTAL_ENGINE, REST_FRAMEWORK, env
from config.storage import s3_storage

SECRET_KEY = "test-only-not-a-secret"  # noqa: S105 - the test settings' own, never deployed
DEBUG = False
ALLOWED_HOSTS = ["*"]
DATABASES = {"default": env.db("DATABASE_URL", default="postgres://postgres@127.0.0.1:5432/portal")}
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
CELERY_BROKER_URL = env.str("REDIS_URL", default="redis://127.0.0.1:6379/15")
REDIS_URL = CELERY_BROKER_URL
# Two test keys: the second proves rotation works.
PORTAL_CREDENTIAL_KEYS = env.list(
    "PORTAL_CREDENTIAL_KEYS",
    default=[
        "pbo6sn4W8bWgaS_TXJcOBegpfdMBa6i_KcMu_4Z9xdg=",
        "C_gm1XCGi_UZ-5tJm0ZSkMLsryZ1VTTdeCd8XcIq9HQ=",
    ],
)
PORTAL_ENGINE = {
    **PORTAL_ENGINE,
    "POLL_INITIAL_SECONDS": 0.3,
    "POLL_MAX_SECONDS": 1.0,
    "RETRY_BASE_SECONDS": 0.2,
    "RETRY_MAX_SECONDS": 1.0,
    "LEASE_SECONDS": 5.0,
    "SWEEP_GRACE_SECONDS": 1.0,
}
PORTAL_HTTP_TIMEOUT_SECONDS = 2.0
PORTAL_HTTP_READ_TIMEOUT_SECONDS = 2.0
STORAGES = {
    # The test process switches to S3 per test (tests/conftest.py s3_storage); worker processes get PORTAL_S3_*.
    "default": s3_storage(os.environ) or {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}


# OPERATIONS
PORTAL_METRICS_DB_CACHE_SECONDS = 0.0  # tests read their own writes at once
# Short beats and thresholds, so alert tests see a stopped worker or beat within seconds.
PORTAL_HEARTBEAT_SECONDS = env.float("PORTAL_HEARTBEAT_SECONDS", default=0.5)
PORTAL_ALERTS = {
    **PORTAL_ALERTS,  # noqa: F405
    "CHECK_SECONDS": env.float("PORTAL_ALERT_CHECK_SECONDS", default=1.0),
    "WORKER_SILENT_SECONDS": 3.0,
    "BEAT_SILENT_SECONDS": 3.0,
    "STEP_OVERDUE_SECONDS": 5.0,
}

# OUTBOUND POLICY
# The simulators and the tests' receivers listen on loopback; nothing else is allowed.
PORTAL_OUTBOUND_ALLOW = ["127.0.0.0/8", "::1", "localhost"]

# AUTHENTICATION HARDENING
# Throttles stay on but out of the way of tests that call the API many times (schemathesis);
# tests/security lowers them where it checks them.
REST_FRAMEWORK = {
    **REST_FRAMEWORK,
    "DEFAULT_THROTTLE_RATES": {"anon": "10000/min", "user": "100000/min", "failed_token": "10000/min"},
}
AXES_VERBOSE = False  # no log line per login in the test output
