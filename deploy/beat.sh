#!/bin/sh
# Celery beat: the schedules and the release sweeper. Start one; a second one started by mistake
# waits on the scheduler lock (portal/beat.py) and takes over only if the first dies.
set -eu
APP=$(cd "$(dirname "$0")/.." && pwd)
export PYTHONPATH="$APP${PYTHONPATH:+:$PYTHONPATH}"
# The schedule lives in PostgreSQL (django-celery-beat): no schedule file on disk.
exec celery -A config beat --loglevel "${CELERY_LOG_LEVEL:-INFO}"
