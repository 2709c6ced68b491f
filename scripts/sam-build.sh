#!/usr/bin/env bash
# Builds every function of infra/template.yaml with `sam build`, exactly as a deploy does
# but for x86_64 (this machine cannot fetch the arm64 Rust target) and, unless
# SAM_BUILD_MODE=release is set, in debug mode (a release build of seven fat-LTO binaries
# takes ~15 minutes here; the build definition is what this checks). A function whose
# BuildMethod, BuildProperties or binary name is wrong fails here, not at deploy time.
#   scripts/sam-build.sh                       # debug, x86_64, into target/sam
#   SAM_BUILD_MODE=release scripts/sam-build.sh
# Installs the pinned aws-sam-cli (scripts/lint-infra.sh) and cargo-lambda into .venv.
set -euo pipefail
cd "$(dirname "$0")/.."

CARGO_LAMBDA_VERSION="1.9.2"
# lint-infra.sh installs the pinned SAM CLI (and lints the template) when it is missing.
[ -x .venv/bin/sam ] || scripts/lint-infra.sh >/dev/null
if ! .venv/bin/cargo-lambda --version >/dev/null 2>&1; then
  echo "sam-build: installing cargo-lambda==$CARGO_LAMBDA_VERSION into .venv" >&2
  .venv/bin/python -m pip install --quiet --disable-pip-version-check "cargo-lambda==$CARGO_LAMBDA_VERSION" >&2
fi
export PATH="$PWD/.venv/bin:$PATH"
export SAM_CLI_TELEMETRY=0 SAM_CLI_DISABLE_UPDATE_CHECK=1
export SAM_BUILD_MODE="${SAM_BUILD_MODE:-debug}"
[ "$SAM_BUILD_MODE" = release ] && unset SAM_BUILD_MODE

BUILD_DIR="${SAM_BUILD_DIR:-target/sam}"
rm -rf "$BUILD_DIR"
sam build --beta-features \
  --template-file infra/template.yaml \
  --build-dir "$BUILD_DIR" \
  --parameter-overrides Architecture=x86_64

# Every function has its bootstrap, an x86-64 executable.
for f in "$BUILD_DIR"/*Function; do
  [ -x "$f/bootstrap" ] || { echo "sam-build: $f has no bootstrap" >&2; exit 1; }
  if command -v file >/dev/null; then
    file -b "$f/bootstrap" | grep -q "x86-64" ||
      { echo "sam-build: $f/bootstrap is not an x86-64 executable" >&2; exit 1; }
  fi
done
echo "sam-build: OK ($(ls -d "$BUILD_DIR"/*Function | wc -l) functions in $BUILD_DIR)"
