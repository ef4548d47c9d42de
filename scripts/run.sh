#!/usr/bin/env bash
# The run command: set up everything, then start web (gunicorn), worker, beat and the simulators.
# PORTAL_AUTORELOAD=1 scripts/run.sh reloads the web tier on code changes.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
scripts/redis.sh
export DJANGO_SETTINGS_MODULE=config.settings.local
# The Procfile's entry points (deploy/*.sh, the same as compose.yaml's) find gunicorn, celery and python here.
export PATH="$PWD/.venv/bin:$PATH"
# gunicorn, as in production; PORTAL_AUTORELOAD=1 restarts it on code changes (development).
export GUNICORN_BIND=${GUNICORN_BIND:-127.0.0.1:8000} GUNICORN_WORKERS=${GUNICORN_WORKERS:-2}
if [ "${PORTAL_AUTORELOAD:-0}" = 1 ]; then export GUNICORN_RELOAD=1; fi
.venv/bin/python manage.py migrate --no-input -v0
.venv/bin/python manage.py seed_demo
echo "Starting web (http://127.0.0.1:8000), worker, beat and simulators (http://127.0.0.1:8100). Ctrl-C stops them all."
exec .venv/bin/honcho start -f Procfile
