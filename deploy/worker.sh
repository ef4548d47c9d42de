#!/bin/sh
# A Celery worker: every platform call. Run as many as you like, on any hosts; they share nothing but
# PostgreSQL, Redis and the object storage (a worker needs no disk of its own beyond a temporary one).
set -eu
APP=$(cd "$(dirname "$0")/.." && pwd)
export PYTHONPATH="$APP${PYTHONPATH:+:$PYTHONPATH}"
exec celery -A config worker --loglevel "${CELERY_LOG_LEVEL:-INFO}" --concurrency "${CELERY_CONCURRENCY:-2}" \
  --hostname "${CELERY_HOSTNAME:-worker-$$@%h}"
