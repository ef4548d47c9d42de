"""Local development: the run command. SQLite unless DATABASE_URL says otherwise."""

from config.settings.base import *  # noqa: F403
from config.settings.base import env, env_bool

DEBUG = env_bool("DJANGO_DEBUG", True)
SECRET_KEY = env.str("DJANGO_SECRET_KEY", default="local-dev-only-not-a-secret")
ALLOWED_HOSTS = ["localhost", "127.0.0.1", "[::1]"]
EMAIL_BACKEND = "django.core.mail.backends.console.EmailBackend"

# The run command writes a key of its own to var/credential.key on first start.
_key_file = BASE_DIR / "var" / "credential.key"  # noqa: F405
if not PORTAL_CREDENTIAL_KEYS and _key_file.exists():  # type: ignore[used-before-def]  # noqa: F405 - from base's star import
    PORTAL_CREDENTIAL_KEYS = [_key_file.read_text().strip()]

# OUTBOUND POLICY
# The simulators and local webhook receivers listen on loopback.
PORTAL_OUTBOUND_ALLOW = ["127.0.0.0/8", "::1", "localhost"]
WHITENOISE_MAX_AGE = 0  # static files change while developing
