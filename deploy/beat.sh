#!/bin/sh
# Celery beat: the schedules and the release sweeper. Start one; a second one started by mistake
# waits on the scheduler lock (portal/beat_lock.py) and takes over only if the first dies.
set -eu
cd "$(dirname "$0")/.."
exec celery -A config beat --loglevel "${CELERY_LOG_LEVEL:-INFO}"
