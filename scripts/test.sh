#!/usr/bin/env bash
# The whole test suite, from a fresh clone: installs what it needs into the project venv
# (.venv: moto for the local AWS emulator, aws-sam-cli and cfn-lint for the template,
# schemathesis for the API fuzz, Playwright and pytest for the console's browser tests,
# which also install Debian's chromium),
# starts the emulator on loopback, runs every test, and stops what it started.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== infrastructure template: sam validate --lint, cfn-lint"
scripts/lint-infra.sh

echo "== sam build: every function built by the template's own build definition (x86_64, debug)"
SAM_BUILD_DIR=target/sam scripts/sam-build.sh
rm -rf target/sam

echo "== local AWS emulator (moto) on loopback"
eval "$(scripts/emulator.sh start)"
trap 'scripts/emulator.sh stop' EXIT

echo "== cargo test (unit, contract, adapter, end-to-end)"
cargo test --workspace --all-targets

echo "== API fuzz: schemathesis, every check, against the local runner's OpenAPI document"
scripts/api-fuzz.sh

echo "== console: the operator console end to end in headless Chromium (Playwright)"
scripts/console-test.sh

echo "== smoke: the benchmark program, every scenario at small sizes (debug build: it checks the program works; figures come from scripts/bench.sh)"
cargo run -q -p bench -- --smoke

echo "== smoke: the README's first command plays its demo on the embedded default"
env -u AWS_ENDPOINT_URL cargo run -q -p local -- --exit-after-demo --port 0
