#!/usr/bin/env bash
# Checks that PostgreSQL and RabbitMQ answer on their local ports; starts them when installed but
# stopped; says exactly what to install when missing. Exit 1 when something cannot be had.
set -u
PGHOST=${PGHOST:-127.0.0.1}; PGPORT=${PGPORT:-5432}
AMQP_HOST=${AMQP_HOST:-127.0.0.1}; AMQP_PORT=${AMQP_PORT:-5672}

up() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }
wait_up() { for _ in $(seq 1 "$3"); do up "$1" "$2" && return 0; sleep 1; done; return 1; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else "$@"; fi; }

ok=1
if ! up "$PGHOST" "$PGPORT"; then
  if command -v pg_ctlcluster >/dev/null 2>&1 && ls /etc/postgresql >/dev/null 2>&1; then
    echo "PostgreSQL is installed but not running: starting it"
    for v in $(ls /etc/postgresql); do as_root pg_ctlcluster --skip-systemctl-redirect "$v" main start || true; done
  elif command -v systemctl >/dev/null 2>&1 && systemctl list-unit-files 2>/dev/null | grep -q '^postgresql'; then
    as_root systemctl start postgresql || true
  fi
  if ! wait_up "$PGHOST" "$PGPORT" 20; then
    echo "PostgreSQL is not reachable on $PGHOST:$PGPORT."
    echo "  Install it:  sudo apt-get install postgresql   (Debian/Ubuntu)   or   brew install postgresql@16 (macOS)"
    echo "  The default DSN is postgresql://postgres@127.0.0.1:5432/outreach (trust auth on loopback);"
    echo "  set DATABASE_URL to use another server or credentials."
    ok=0
  fi
fi
if ! up "$AMQP_HOST" "$AMQP_PORT"; then
  if command -v rabbitmq-server >/dev/null 2>&1; then
    echo "RabbitMQ is installed but not running: starting it"
    as_root rabbitmq-server -detached || true
  elif command -v systemctl >/dev/null 2>&1 && systemctl list-unit-files 2>/dev/null | grep -q '^rabbitmq-server'; then
    as_root systemctl start rabbitmq-server || true
  fi
  if ! wait_up "$AMQP_HOST" "$AMQP_PORT" 60; then
    echo "RabbitMQ is not reachable on $AMQP_HOST:$AMQP_PORT."
    echo "  Install it:  sudo apt-get install rabbitmq-server   (Debian/Ubuntu)   or   brew install rabbitmq (macOS)"
    echo "  The default is amqp://guest:guest@127.0.0.1:5672/; set AMQP_URI to use another broker."
    ok=0
  fi
fi
[ "$ok" = 1 ] && echo "PostgreSQL and RabbitMQ are up." && exit 0
exit 1
