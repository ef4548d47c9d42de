#!/bin/sh
# The web process: gunicorn serving config.wsgi with config/gunicorn.py (every option from GUNICORN_*).
# compose.yaml, the Procfile and the multi-host rehearsal (tests/cluster) all start the web tier with this.
# The working directory is left as the caller set it: the code is found through PYTHONPATH.
set -eu
APP=$(cd "$(dirname "$0")/.." && pwd)
export PYTHONPATH="$APP${PYTHONPATH:+:$PYTHONPATH}"
exec gunicorn -c "$APP/config/gunicorn.py" config.wsgi
