"""gunicorn settings, every one from the environment: ``gunicorn -c config/gunicorn.py config.wsgi``.

https://docs.gunicorn.org/en/stable/settings.html. The defaults fit one small host behind a
reverse proxy; docs/deploy.md explains the sizing.
"""

from __future__ import annotations

import multiprocessing
import os


def _int(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    return int(raw) if raw else default


def _bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name, "").strip().lower()
    if not raw:
        return default
    if raw in {"1", "true", "yes", "on"}:
        return True
    if raw in {"0", "false", "no", "off"}:
        return False
    raise ValueError(f"{name} must be a boolean, got {raw!r}")


bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000").split(",")
# Requests mostly wait on PostgreSQL: a few processes with threads each (gthread).
workers = _int("GUNICORN_WORKERS", min(2 * multiprocessing.cpu_count() + 1, 8))
threads = _int("GUNICORN_THREADS", 4)
worker_class = "gthread" if threads > 1 else "sync"
# A request that runs this long is killed and its worker replaced; uploads arrive in <= 10 MB pieces.
timeout = _int("GUNICORN_TIMEOUT", 60)
graceful_timeout = _int("GUNICORN_GRACEFUL_TIMEOUT", 30)
# Longer than the proxy's keep-alive to upstreams, so gunicorn never closes a connection nginx reuses.
keepalive = _int("GUNICORN_KEEPALIVE", 75)
# Recycle workers now and then so a slow leak cannot grow forever; jitter spreads the restarts.
max_requests = _int("GUNICORN_MAX_REQUESTS", 2000)
max_requests_jitter = _int("GUNICORN_MAX_REQUESTS_JITTER", 200)
# Load the app before forking: workers share memory and a broken app fails at start, not per worker.
preload_app = _bool("GUNICORN_PRELOAD", True)
# Development only: restart on code changes (scripts/run.sh sets it with PORTAL_AUTORELOAD=1).
reload = _bool("GUNICORN_RELOAD", False)
if reload:
    preload_app = False
# Logs to stdout/stderr; the platform's log shipper collects them.
accesslog = os.environ.get("GUNICORN_ACCESS_LOG", "-") or None
errorlog = "-"
loglevel = os.environ.get("GUNICORN_LOG_LEVEL", "info")
# %(h)s is the client address as the proxy forwarded it (see forwarded_allow_ips); %(M)s the duration in ms.
access_log_format = os.environ.get(
    "GUNICORN_ACCESS_LOG_FORMAT",
    '%(h)s "%(r)s" %(s)s %(B)s %(M)sms "%(f)s" "%(a)s"',
)
# Trust X-Forwarded-* only from these proxies (comma-separated addresses, or * behind a private network).
forwarded_allow_ips = os.environ.get("GUNICORN_FORWARDED_ALLOW_IPS", "127.0.0.1,::1")
# The workers' heartbeat files: memory-backed /dev/shm in containers (an overlay /tmp can stall them).
worker_tmp_dir = os.environ.get("GUNICORN_WORKER_TMP_DIR") or None
proc_name = "portal-web"
# gunicorn's control socket defaults to one path per user ($HOME/.gunicorn/gunicorn.ctl), which two
# instances on one host would fight over: off unless GUNICORN_CONTROL_SOCKET names a path.
control_socket_disable = not os.environ.get("GUNICORN_CONTROL_SOCKET")
if not control_socket_disable:
    control_socket = os.environ["GUNICORN_CONTROL_SOCKET"]
