#!/usr/bin/env bash
# The run command: set up everything, then start web, worker, beat and the simulators.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
scripts/redis.sh
export DJANGO_SETTINGS_MODULE=config.settings.local
.venv/bin/python manage.py migrate --no-input -v0
.venv/bin/python manage.py seed_demo
echo "Starting web (http://127.0.0.1:8000), worker, beat and simulators (http://127.0.0.1:8100). Ctrl-C stops them all."
exec .venv/bin/honcho start -f Procfile
