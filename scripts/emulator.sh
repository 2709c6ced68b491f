#!/usr/bin/env bash
# Local AWS emulator (moto server) for the adapter tests and for functions/local.
#   scripts/emulator.sh start   # create .venv, install moto, start server, print exports
#   scripts/emulator.sh stop    # stop the server started by `start`
#   scripts/emulator.sh env     # print the export lines only
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
PORT="${MOTO_PORT:-5055}"
MOTO_VERSION="5.2.1"
PID_FILE="$VENV/moto-$PORT.pid"
LOG_FILE="$VENV/moto-$PORT.log"
URL="http://127.0.0.1:$PORT"

print_env() {
  echo "export AWS_ENDPOINT_URL=$URL"
  echo "export AWS_REGION=us-east-1"
  echo "export AWS_ACCESS_KEY_ID=test"
  echo "export AWS_SECRET_ACCESS_KEY=test"
}

is_running() {
  [[ -f "$PID_FILE" ]] && kill -0 "$(cat "$PID_FILE")" 2>/dev/null
}

answers() {
  curl -s -o /dev/null --max-time 2 "$URL/moto-api/" 2>/dev/null
}

ensure_venv() {
  if [[ ! -x "$VENV/bin/python" ]]; then
    echo "creating $VENV" >&2
    python3 -m venv "$VENV"
  fi
  local have
  have="$("$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("moto"))' 2>/dev/null || true)"
  if [[ "$have" != "$MOTO_VERSION" || ! -x "$VENV/bin/moto_server" ]]; then
    echo "installing moto[server]==$MOTO_VERSION into $VENV" >&2
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "moto[server]==$MOTO_VERSION" >&2
  fi
}

start() {
  ensure_venv
  if is_running; then
    echo "moto already running (pid $(cat "$PID_FILE")) on $URL" >&2
  else
    if answers; then
      echo "something already answers on $URL; not starting another server" >&2
      print_env
      return 0
    fi
    echo "starting moto on $URL (log: $LOG_FILE)" >&2
    nohup "$VENV/bin/moto_server" -H 127.0.0.1 -p "$PORT" >"$LOG_FILE" 2>&1 &
    echo $! >"$PID_FILE"
  fi
  for _ in $(seq 1 60); do
    if answers; then
      print_env
      return 0
    fi
    if ! is_running; then
      echo "moto exited; see $LOG_FILE" >&2
      tail -n 20 "$LOG_FILE" >&2 || true
      exit 1
    fi
    sleep 0.5
  done
  echo "moto did not answer on $URL within 30 s; see $LOG_FILE" >&2
  exit 1
}

stop() {
  if is_running; then
    local pid
    pid="$(cat "$PID_FILE")"
    kill "$pid"
    for _ in $(seq 1 20); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.25
    done
    kill -0 "$pid" 2>/dev/null && kill -9 "$pid" 2>/dev/null || true
    echo "moto stopped (pid $pid)" >&2
  else
    echo "moto not running" >&2
  fi
  rm -f "$PID_FILE"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  env) print_env ;;
  *)
    echo "usage: $0 start|stop|env" >&2
    exit 2
    ;;
esac
