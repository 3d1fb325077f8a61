#!/usr/bin/env bash
# Start a throwaway Redis server on 127.0.0.1 for the job-queue tests (REDIS_URL) and print its
# URL. Installs Debian's redis-server package when it is missing. Idempotent: a server already
# answering on the port is reused. Used by `make test`; see the README (Jobs).
set -euo pipefail
DIR=${FABLENS_REDIS_DIR:-/tmp/fablens-redis}
PORT=${FABLENS_REDIS_PORT:-56379}
URL="redis://127.0.0.1:${PORT}/0"

if ! command -v redis-server >/dev/null 2>&1; then
  echo "installing Debian's redis-server for the job-queue tests" >&2
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq redis-server >/dev/null
fi
if redis-cli -h 127.0.0.1 -p "$PORT" ping >/dev/null 2>&1; then echo "$URL"; exit 0; fi
mkdir -p "$DIR"
redis-server --port "$PORT" --bind 127.0.0.1 --save "" --appendonly no --dir "$DIR" \
  --daemonize yes --logfile "$DIR/server.log" --pidfile "$DIR/redis.pid" >/dev/null
for _ in $(seq 1 100); do
  if redis-cli -h 127.0.0.1 -p "$PORT" ping >/dev/null 2>&1; then echo "$URL"; exit 0; fi
  sleep 0.1
done
echo "redis-server did not answer on 127.0.0.1:$PORT (see $DIR/server.log)" >&2
exit 1
