#!/usr/bin/env bash
# The operator console's end-to-end tests in a real headless Chromium (issue 15).
#
# Installs what they need: Debian's chromium (apt-get, as root; Playwright's own browser
# download cannot reach its CDN from here) and the pinned Playwright and pytest into the
# project venv (.venv). Builds the local runner; the tests start it on a free loopback
# port (in-memory adapters, the WhatsApp simulator) and drive the console through it.
#   scripts/console-test.sh                         # the run scripts/test.sh makes
#   CONSOLE_SHOTS=/tmp/shots scripts/console-test.sh  # and keep a screenshot of each step
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
VENV="$ROOT/.venv"
PLAYWRIGHT_VERSION="1.65.3"
PYTEST_VERSION="9.2.0"
CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"

if [[ ! -x "$CHROMIUM" ]]; then
  if [[ "$(id -u)" -ne 0 ]]; then
    echo "console-test: $CHROMIUM is missing; install Debian's chromium (apt-get install chromium) as root" >&2
    exit 1
  fi
  echo "console-test: installing Debian's chromium"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi

if [[ ! -x "$VENV/bin/python" ]]; then
  echo "console-test: creating $VENV"
  python3 -m venv "$VENV"
fi
installed() {
  "$VENV/bin/python" -c "import importlib.metadata as m; print(m.version('$1'))" 2>/dev/null || true
}
if [[ "$(installed playwright)" != "$PLAYWRIGHT_VERSION" || "$(installed pytest)" != "$PYTEST_VERSION" ]]; then
  echo "console-test: installing playwright==$PLAYWRIGHT_VERSION and pytest==$PYTEST_VERSION into .venv"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check \
    "playwright==$PLAYWRIGHT_VERSION" "pytest==$PYTEST_VERSION"
fi

echo "console-test: building the local runner"
cargo build -q -p local
export LOCAL_BIN="${CARGO_TARGET_DIR:-$ROOT/target}/debug/local"
export CHROMIUM
# The tests' runner uses the in-memory adapters, whatever the caller's environment says.
env -u AWS_ENDPOINT_URL "$VENV/bin/python" -m pytest -q -p no:cacheprovider tests/console
