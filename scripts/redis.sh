#!/usr/bin/env bash
# Make sure a Redis answers at REDIS_URL's host and port; start a local one if none does.
set -euo pipefail
url=${REDIS_URL:-redis://127.0.0.1:6379/0}
hostport=${url#redis://}; hostport=${hostport#*@}; hostport=${hostport%%/*}
host=${hostport%%:*}; port=${hostport##*:}; [ "$port" = "$host" ] && port=6379
ping() { (exec 3<>"/dev/tcp/$host/$port" && printf 'PING\r\n' >&3 && timeout 2 head -c 5 <&3 | grep -q PONG) 2>/dev/null; }
if ping; then exit 0; fi
if ! command -v redis-server >/dev/null 2>&1; then
  cat >&2 <<MSG
No Redis answers at $host:$port and redis-server is not installed.
Install it (Debian/Ubuntu: sudo apt-get install redis-server; macOS: brew install redis),
or point REDIS_URL at a running Redis, then run the command again.
MSG
  exit 1
fi
echo "Starting a local redis-server on $host:$port"
redis-server --daemonize yes --bind "$host" --port "$port" --save "" --appendonly no >/dev/null
for _ in $(seq 50); do ping && exit 0; sleep 0.1; done
echo "redis-server did not answer on $host:$port" >&2
exit 1
