#!/usr/bin/env bash
# Start a throwaway PostgreSQL server on 127.0.0.1 for the database tests and print its URL.
# Installs Debian's postgresql package when no server binaries are there. Idempotent: a server
# already answering on the port is reused. Used by `make test`; see the README.
set -euo pipefail
DIR=${FABLENS_PG_DIR:-/tmp/fablens-pg}
PORT=${FABLENS_PG_PORT:-55432}

bindir() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1; }
if [ -z "$(bindir)" ]; then
  echo "installing Debian's postgresql for the database tests" >&2
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq postgresql >/dev/null
fi
BIN=$(bindir)
URL="postgresql://postgres@127.0.0.1:${PORT}/postgres"

if "$BIN/pg_isready" -q -h 127.0.0.1 -p "$PORT"; then echo "$URL"; exit 0; fi

# initdb refuses to run as root: run the server as the postgres user then.
if [ "$(id -u)" = 0 ]; then AS="runuser -u postgres --"; else AS=""; fi
mkdir -p "$DIR"
[ -z "$AS" ] || chown postgres "$DIR"
if [ ! -f "$DIR/data/PG_VERSION" ]; then
  $AS "$BIN/initdb" -D "$DIR/data" -U postgres -A trust --no-sync -E UTF8 >/dev/null
fi
$AS "$BIN/pg_ctl" -D "$DIR/data" -l "$DIR/server.log" -w -t 60 \
  -o "-p $PORT -k $DIR -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off" \
  start >/dev/null
echo "$URL"
