#!/bin/sh
# A Celery worker: every platform call. Run as many as you like, on any hosts.
set -eu
cd "$(dirname "$0")/.."
exec celery -A config worker --loglevel "${CELERY_LOG_LEVEL:-INFO}" --concurrency "${CELERY_CONCURRENCY:-2}"
