#!/bin/sh
# The release step: run once per deploy, before new web and worker code starts (docs/deploy.md).
set -eu
cd "$(dirname "$0")/.."
exec python manage.py migrate --no-input
