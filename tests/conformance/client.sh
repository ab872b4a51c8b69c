#!/usr/bin/env bash
# The command `conformance client --command` runs: the server's URL is the last argument,
# the scenario's name is in MCP_CONFORMANCE_SCENARIO. MCPSCRIPT_BIN picks the binary
# (default: target/debug/mcpscript next to this folder).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
bin="${MCPSCRIPT_BIN:-$here/../../target/debug/mcpscript}"
url="${!#}"
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
exec_status=0
# --- OAuth scenarios (auth/*): auth.rhai with --oauth and the credentials the suite hands
# over in MCP_CONFORMANCE_CONTEXT (client_id, client_secret, private_key_pem). ---
if [[ "${MCP_CONFORMANCE_SCENARIO:-}" == auth/* ]]; then
    ctx="${MCP_CONFORMANCE_CONTEXT:-}"
    [[ -n "$ctx" ]] || ctx='{}'
    oauth=(--oauth --oauth-client-metadata-url "https://conformance-test.local/client-metadata.json")
    # field NAME: that field of the context (empty when absent), read with the Python the
    # tests need anyway.
    field() {
        python3 -c 'import json, sys; v = json.loads(sys.argv[1]).get(sys.argv[2]); print(v if isinstance(v, str) else "", end="")' "$ctx" "$1"
    }
    id="$(field client_id)"
    [[ -n "$id" ]] && oauth+=(--oauth-client-id "$id")
    secret="$(field client_secret)"
    [[ -n "$secret" ]] && export MCPSCRIPT_OAUTH_CLIENT_SECRET="$secret"
    key="$(field private_key_pem)"
    if [[ -n "$key" ]]; then
        printf '%s\n' "$key" >"$out/key.pem"
        oauth+=(--oauth-private-key "$out/key.pem")
    fi
    "$bin" run "$here/auth.rhai" --quiet --target "$url" --out "$out/run" --request-timeout 10s "${oauth[@]}" \
        || exec_status=$?
    exit "$exec_status"
fi
"$bin" run "$here/client.rhai" --quiet --target "$url" --out "$out" --request-timeout 10s \
    --set "scenario=${MCP_CONFORMANCE_SCENARIO:-initialize}" || exec_status=$?
exit "$exec_status"
