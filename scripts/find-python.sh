#!/usr/bin/env bash
# Print the path of a working Python 3.12 or newer: on PATH first, else under pyenv.
# Each candidate is run, not just found: a pyenv shim without a version set fails to run.
set -u
works() { "$1" -c 'import sys, venv; sys.exit(0 if sys.version_info >= (3, 12) else 1)' >/dev/null 2>&1; }
for name in python3.13 python3.12 python3 python; do
  path=$(command -v "$name" 2>/dev/null) || continue
  if works "$path"; then echo "$path"; exit 0; fi
done
if command -v pyenv >/dev/null 2>&1; then
  root=$(pyenv root)
  for dir in $(ls -d "$root"/versions/3.1[2-9]* "$root"/versions/3.[2-9][0-9]* 2>/dev/null | sort -rV); do
    for bin in "$dir"/bin/python3.*[0-9] "$dir"/bin/python3; do
      if [ -x "$bin" ] && works "$bin"; then echo "$bin"; exit 0; fi
    done
  done
fi
cat >&2 <<'MSG'
No Python 3.12 or newer was found (Django 6 needs it).
Install one, then run the command again:
  - Debian/Ubuntu:  sudo apt-get install python3.12 python3.12-venv   (or a newer one)
  - macOS:          brew install python@3.13
  - pyenv:          pyenv install 3.13.0
MSG
exit 1
