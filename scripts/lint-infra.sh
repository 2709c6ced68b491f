#!/usr/bin/env bash
# Lint the SAM template with the SAM CLI's linter and with cfn-lint.
#
# Uses the project venv at <repo>/.venv (created if missing) and installs the pinned
# tools into it only when they are missing or at another version. It never relies on a
# globally installed sam or cfn-lint. Any error or warning fails the script.
set -euo pipefail

SAM_CLI_VERSION="1.170.0"
CFN_LINT_VERSION="1.58.0" # aws-sam-cli 1.170.0 requires cfn-lint>=1.52.0,<1.59

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

VENV="$ROOT/.venv"
TEMPLATE="infra/template.yaml"
REGION="${AWS_REGION:-us-east-1}"

if [ ! -x "$VENV/bin/python" ]; then
  echo "lint-infra: creating $VENV"
  python3 -m venv "$VENV"
fi

# Prints the installed version of a package in the venv, or nothing.
installed_version() {
  "$VENV/bin/pip" show "$1" 2>/dev/null | awk '/^Version:/ {print $2}'
}

want=()
[ "$(installed_version aws-sam-cli)" = "$SAM_CLI_VERSION" ] || want+=("aws-sam-cli==$SAM_CLI_VERSION")
[ "$(installed_version cfn-lint)" = "$CFN_LINT_VERSION" ] || want+=("cfn-lint==$CFN_LINT_VERSION")
if [ "${#want[@]}" -gt 0 ]; then
  echo "lint-infra: installing ${want[*]} into .venv"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "${want[@]}"
fi

# SAM CLI: no telemetry, no update check (validate --lint works offline).
export SAM_CLI_TELEMETRY=0
export SAM_CLI_DISABLE_UPDATE_CHECK=1

echo "lint-infra: sam validate --lint ($("$VENV/bin/sam" --version))"
"$VENV/bin/sam" validate --lint -t "$TEMPLATE" --region "$REGION"

echo "lint-infra: cfn-lint ($("$VENV/bin/cfn-lint" --version))"
# cfn-lint exits non-zero on errors (2), warnings (4) and informational findings (8).
"$VENV/bin/cfn-lint" --regions "$REGION" -- "$TEMPLATE"

echo "lint-infra: OK"
