#!/bin/sh
# The web process: gunicorn serving config.wsgi with config/gunicorn.py (every option from GUNICORN_*).
# compose.yaml, the Procfile and the multi-host rehearsal (tests/cluster) all start the web tier with this.
set -eu
cd "$(dirname "$0")/.."
exec gunicorn -c config/gunicorn.py config.wsgi
