#!/usr/bin/env bash
# `make run` after the venv is built and the database migrated: picks free ports, starts the
# Procfile (five services, the gateway, the SMTP sink) with honcho, waits until every service
# answers ping over RabbitMQ and the gateway /health answers, seeds the demo organization, then
# prints the URLs and the demo login and follows the logs. Ctrl-C stops everything.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
mkdir -p var/log

# Ports: an explicit environment value is used as given (and must be free); otherwise the default
# from config.yml, or the next free port above it when something else holds the default.
eval "$($PY - <<'PYEOF'
import os, socket, sys
from services.common.config import load_config

def free(port):
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False

config = load_config()
taken = set()
for name in ("GATEWAY_PORT", "SMTP_SINK_PORT", "SMTP_SINK_HTTP_PORT"):
    port = int(config[name])
    if name in os.environ:
        if not free(port):
            sys.stderr.write(f"{name}={port} is already in use; choose another or unset it.\n")
            print("exit 1")
            sys.exit(0)
    else:
        while not free(port) or port in taken:
            port += 1
    taken.add(port)
    print(f"export {name}={port}")
PYEOF
)"
# Webhook signatures are computed over the public URL; locally that is the gateway itself.
export PUBLIC_BASE_URL=${PUBLIC_BASE_URL:-http://127.0.0.1:$GATEWAY_PORT}
export GATEWAY_URL=${GATEWAY_URL:-http://127.0.0.1:$GATEWAY_PORT}
export PYTHONPATH=${PYTHONPATH:-$PWD}

# Another `make run` on the same broker would share its queues: say so instead of splitting work.
if $PY -W ignore - <<'PYEOF' 2>/dev/null
from nameko.standalone.rpc import ClusterRpcProxy
from services.common.config import load_config
with ClusterRpcProxy({"AMQP_URI": load_config()["AMQP_URI"]}, timeout=2) as proxy:
    proxy.identity.ping()
PYEOF
then
  echo "The services already answer on this broker: is another 'make run' up? Stop it first," >&2
  echo "or point this one at another vhost with AMQP_URI." >&2
  exit 1
fi

# `make demo` in another shell reads where the stack is from here.
printf 'GATEWAY_URL=%s\nGATEWAY_PORT=%s\nSMTP_SINK_PORT=%s\nSMTP_SINK_HTTP_PORT=%s\n' \
  "$GATEWAY_URL" "$GATEWAY_PORT" "$SMTP_SINK_PORT" "$SMTP_SINK_HTTP_PORT" > var/run.env

LOG=var/log/run.log
: > "$LOG"
echo "Starting identity, contacts, campaigns, messaging, reporting, the gateway (port $GATEWAY_PORT)"
echo "and the SMTP sink (SMTP $SMTP_SINK_PORT, listing $SMTP_SINK_HTTP_PORT); logs in $LOG"
.venv/bin/honcho start -f Procfile >>"$LOG" 2>&1 &
HONCHO=$!

stop() {
  trap - INT TERM EXIT
  if kill -0 "$HONCHO" 2>/dev/null; then
    echo
    echo "Stopping..."
    kill -TERM "$HONCHO" 2>/dev/null || true
    wait "$HONCHO" 2>/dev/null || true
  fi
  [ -n "${TAIL:-}" ] && kill "$TAIL" 2>/dev/null || true
  rm -f var/run.env
  echo "Stopped."
}
trap stop EXIT
# Ctrl-C is how a user stops `make run`: a clean stop, not an error for make to report.
trap 'exit 0' INT TERM

if ! HONCHO_PID=$HONCHO $PY -W ignore - <<'PYEOF'
import logging, os, sys, time
import requests
from nameko.standalone.rpc import ClusterRpcProxy
from services.common.config import load_config

logging.getLogger("amqp").setLevel(logging.ERROR)  # channel-closing chatter while services boot
config = load_config()
honcho = int(os.environ["HONCHO_PID"])
deadline = time.time() + float(os.environ.get("RUN_START_TIMEOUT", "120"))

def alive():
    try:
        os.kill(honcho, 0)
    except OSError:
        sys.exit("the processes exited during start-up; see var/log/run.log")

with ClusterRpcProxy({"AMQP_URI": config["AMQP_URI"]}, timeout=3) as proxy:
    for name in ("identity", "contacts", "campaigns", "messaging", "reporting"):
        while True:
            alive()
            try:
                getattr(proxy, name).ping()
                print(f"  {name} answers", flush=True)
                break
            except Exception:
                if time.time() > deadline:
                    sys.exit(f"{name} did not answer ping in time; see var/log/run.log")
                time.sleep(0.5)
for what, url in (("gateway", os.environ["GATEWAY_URL"] + "/health"),
                  ("smtp sink", f"http://127.0.0.1:{config['SMTP_SINK_HTTP_PORT']}/messages")):
    while True:
        alive()
        try:
            if requests.get(url, timeout=2).status_code == 200:
                print(f"  {what} answers", flush=True)
                break
        except requests.RequestException:
            pass
        if time.time() > deadline:
            sys.exit(f"{url} did not answer in time; see var/log/run.log")
        time.sleep(0.3)
PYEOF
then
  echo "Start-up failed. Last lines of $LOG:" >&2
  tail -n 40 "$LOG" >&2
  exit 1
fi

echo "Seeding the demo organization..."
if ! $PY -m scripts.seed_demo; then
  echo "Seeding the demo organization failed (the services are still running; see above and $LOG)." >&2
fi

cat <<EOT

  Outreach is running.
    API:          $GATEWAY_URL/api/v1
    OpenAPI:      $GATEWAY_URL/api/openapi.json
    Health:       $GATEWAY_URL/health
    Mail sink:    http://127.0.0.1:$SMTP_SINK_HTTP_PORT/messages   (SMTP on 127.0.0.1:$SMTP_SINK_PORT)
    Logs:         $LOG
  Demo login:   ${DEMO_EMAIL:-demo@example.org} / ${DEMO_PASSWORD:-larkspur-demo-2026}
  In another shell:  make demo
  Ctrl-C stops everything.

EOT

# Follow the logs until Ctrl-C (RUN_QUIET=1: just wait).
if [ -z "${RUN_QUIET:-}" ]; then
  tail -n 0 -F "$LOG" &
  TAIL=$!
fi
wait "$HONCHO"
