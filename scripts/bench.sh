#!/usr/bin/env bash
# The performance benchmark, from a fresh clone (README "Performance"):
#   scripts/bench.sh                 # every scenario at full size (about N minutes)
#   scripts/bench.sh --smoke         # every scenario, small: what scripts/test.sh runs in CI
#   scripts/bench.sh throughput      # chosen scenarios; `--help` lists them
# Installs what it needs into the project venv (.venv: moto for the cost scenario's
# local AWS emulator, cargo-lambda for the cold-start scenario's Lambda zips), starts the
# emulator on its own port, builds the bench in release and stops what it started.
set -euo pipefail
cd "$(dirname "$0")/.."

CARGO_LAMBDA_VERSION="1.9.2"
export MOTO_PORT="${BENCH_MOTO_PORT:-5059}"
eval "$(scripts/emulator.sh start)"
trap 'scripts/emulator.sh stop' EXIT

if ! .venv/bin/cargo-lambda --version >/dev/null 2>&1; then
  echo "installing cargo-lambda==$CARGO_LAMBDA_VERSION into .venv" >&2
  .venv/bin/python -m pip install --quiet --disable-pip-version-check "cargo-lambda==$CARGO_LAMBDA_VERSION" >&2
fi
export PATH="$PWD/.venv/bin:$PATH"

cargo run --release -q -p bench -- "$@"
