#!/usr/bin/env bash
# Create .venv with Python 3.12+ and install requirements.txt (again only when it or requirements/production.txt changes).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ] || ! .venv/bin/python -c 'import sys; sys.exit(0 if sys.version_info >= (3, 12) else 1)' 2>/dev/null; then
  PYTHON=$(scripts/find-python.sh)
  echo "Creating .venv with $PYTHON ($("$PYTHON" --version))"
  rm -rf .venv
  "$PYTHON" -m venv .venv
fi
stamp=.venv/.requirements.sha256
# The stamp covers requirements.txt and the production pins it includes.
want=$(cat requirements.txt requirements/production.txt | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "Installing requirements.txt into .venv"
  .venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -r requirements.txt
  echo "$want" > "$stamp"
fi
mkdir -p var
if [ ! -s var/credential.key ]; then
  # A local key of its own for encrypting credentials (never SECRET_KEY; never committed).
  .venv/bin/python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())' > var/credential.key
  chmod 600 var/credential.key
fi
