#!/usr/bin/env bash
# Install and start a real redis-server on loopback for the Redis replay-cache
# tests. Prints its URL on stdout; everything else goes to stderr.
#
# Loopback only, no persistence (a replay record outlives no test run), run as
# a daemon. SAML2_REDIS_PORT picks the port (default 6399, away from a system
# Redis on 6379). Running it again reuses a server already answering there.
set -euo pipefail
port="${SAML2_REDIS_PORT:-6399}"
if ! command -v redis-server >/dev/null 2>&1; then
  if [ "$(id -u)" -ne 0 ]; then echo "redis.sh: redis-server is missing and we are not root" >&2; exit 1; fi
  apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >&2
fi
if ! redis-cli -h 127.0.0.1 -p "$port" ping 2>/dev/null | grep -q PONG; then
  dir="${TMPDIR:-/tmp}/saml2-redis-$port"
  mkdir -p "$dir"
  redis-server --bind 127.0.0.1 --port "$port" --protected-mode yes \
    --daemonize yes --dir "$dir" --pidfile "$dir/redis.pid" --logfile "$dir/redis.log" \
    --save "" --appendonly no >&2
  for _ in $(seq 1 50); do
    redis-cli -h 127.0.0.1 -p "$port" ping 2>/dev/null | grep -q PONG && break
    sleep 0.1
  done
  redis-cli -h 127.0.0.1 -p "$port" ping 2>/dev/null | grep -q PONG || {
    echo "redis.sh: redis-server did not answer on 127.0.0.1:$port (see $dir/redis.log)" >&2
    exit 1
  }
fi
echo "redis://127.0.0.1:$port/0"
