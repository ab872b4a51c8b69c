#!/usr/bin/env bash
# Installs the external MCP SDKs used by the interop tests, idempotently:
#   - npm packages from package-lock.json into tests/interop/node_modules (npm ci)
#   - the Python SDK from requirements.txt into tests/interop/.venv
# Quiet when everything is already up to date or installs cleanly; on failure it
# prints the failing step's output and exits non-zero.
# Each install is skipped while a stamp (hash of its inputs) still matches.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here"

die() {
  echo "tests/interop/setup.sh: $*" >&2
  exit 1
}

# Serialise concurrent runs (several test binaries may call this at once).
if command -v flock >/dev/null 2>&1; then
  exec 9>"$here/.setup.lock"
  flock -w 600 9 || die "timed out waiting for another setup.sh run"
fi

log="$(mktemp "${TMPDIR:-/tmp}/mcpscript-interop-setup.XXXXXX")"
trap 'rm -f "$log"' EXIT

# run STEP CMD...: runs CMD with its output captured; on failure shows it and exits.
run() {
  local step="$1"
  shift
  if ! "$@" >"$log" 2>&1; then
    echo "tests/interop/setup.sh: $step failed: $*" >&2
    sed 's/^/  | /' "$log" >&2
    exit 1
  fi
}

hash_of() {
  cat "$@" | sha256sum | cut -d' ' -f1
}

# ---- Node ------------------------------------------------------------------
command -v node >/dev/null 2>&1 || die "node is not installed (Node >= 18 is needed)"
command -v npm >/dev/null 2>&1 || die "npm is not installed"
[ -f package-lock.json ] || die "package-lock.json is missing"

node_stamp="node_modules/.mcpscript-setup-stamp"
node_want="$(hash_of package.json package-lock.json)-$(node --version)"
entry="node_modules/@modelcontextprotocol/server-everything/dist/index.js"
if [ ! -f "$node_stamp" ] || [ "$(cat "$node_stamp")" != "$node_want" ] || [ ! -f "$entry" ]; then
  run "npm ci" npm ci --no-audit --no-fund --ignore-scripts --loglevel=error
  [ -f "$entry" ] || die "npm ci succeeded but $entry is missing"
  printf '%s' "$node_want" >"$node_stamp"
fi

# ---- Python ----------------------------------------------------------------
py="${PYTHON:-python3}"
command -v "$py" >/dev/null 2>&1 || die "$py is not installed (Python >= 3.10 is needed)"
"$py" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else 1)' ||
  die "$py is $("$py" --version 2>&1); the mcp SDK needs Python >= 3.10"

venv_stamp=".venv/.mcpscript-setup-stamp"
venv_want="$(hash_of requirements.txt)-$("$py" --version 2>&1 | tr -d ' ')"
if [ ! -f "$venv_stamp" ] || [ "$(cat "$venv_stamp")" != "$venv_want" ] || [ ! -x .venv/bin/python ]; then
  # A venv from another interpreter (or a half-made one) is rebuilt from scratch.
  rm -rf .venv
  run "python venv" "$py" -m venv .venv
  run "pip install" .venv/bin/python -m pip install --disable-pip-version-check --no-input \
    -q -r requirements.txt
  run "python import check" .venv/bin/python -c 'import mcp, anyio'
  printf '%s' "$venv_want" >"$venv_stamp"
fi
