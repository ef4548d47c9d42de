#!/usr/bin/env bash
# The test command: the whole suite against real PostgreSQL, real Redis, a real Celery
# worker and Debian's chromium, starting or installing whatever is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh

export DATABASE_URL=${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/portal}
export REDIS_URL=${TEST_REDIS_URL:-redis://127.0.0.1:6379/15}

pg_up() { .venv/bin/python - <<'PY' 2>/dev/null
import os, psycopg
psycopg.connect(os.environ["DATABASE_URL"].rsplit("/", 1)[0] + "/postgres", connect_timeout=3).close()
PY
}
if ! pg_up; then
  echo "PostgreSQL is down: starting it"
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start
  for _ in $(seq 50); do pg_up && break; sleep 0.2; done
  pg_up || { echo "PostgreSQL did not start" >&2; exit 1; }
fi
scripts/redis.sh

if [ ! -x /usr/bin/chromium ]; then
  echo "Installing Debian's chromium for the browser tests"
  if [ "$(id -u)" = 0 ]; then APT="apt-get"; else APT="sudo apt-get"; fi
  $APT update -qq && DEBIAN_FRONTEND=noninteractive $APT install -y -qq chromium >/dev/null
fi

if ! command -v nginx >/dev/null 2>&1 && [ ! -x /usr/sbin/nginx ]; then
  echo "Installing Debian's nginx for the multi-host rehearsal (tests/cluster)"
  if [ "$(id -u)" = 0 ]; then APT="apt-get"; else APT="sudo apt-get"; fi
  $APT update -qq && DEBIAN_FRONTEND=noninteractive $APT install -y -qq nginx >/dev/null
fi

# The house rules first: lint, format and types (pyproject.toml), each a gate of its own.
echo "ruff check, ruff format --check, mypy"
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy

# Tests run in random order (pytest-randomly prints its seed; rerun an order with
# --randomly-seed=N). Every subset and every order must pass.
exec .venv/bin/python -m pytest --create-db "$@"
