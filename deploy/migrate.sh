#!/bin/sh
# The release step: run once per deploy, before new web and worker code starts (docs/deploy.md, Upgrades).
set -eu
APP=$(cd "$(dirname "$0")/.." && pwd)
exec python "$APP/manage.py" migrate --no-input
