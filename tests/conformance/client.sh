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
    id="$(jq -r '.client_id // empty' <<<"$ctx")"
    [[ -n "$id" ]] && oauth+=(--oauth-client-id "$id")
    secret="$(jq -r '.client_secret // empty' <<<"$ctx")"
    [[ -n "$secret" ]] && export MCPSCRIPT_OAUTH_CLIENT_SECRET="$secret"
    if [[ -n "$(jq -r '.private_key_pem // empty' <<<"$ctx")" ]]; then
        jq -r '.private_key_pem' <<<"$ctx" >"$out/key.pem"
        oauth+=(--oauth-private-key "$out/key.pem")
    fi
    "$bin" run "$here/auth.rhai" --quiet --target "$url" --out "$out/run" --request-timeout 10s "${oauth[@]}" \
        || exec_status=$?
    exit "$exec_status"
fi
"$bin" run "$here/client.rhai" --quiet --target "$url" --out "$out" --request-timeout 10s \
    --set "scenario=${MCP_CONFORMANCE_SCENARIO:-initialize}" || exec_status=$?
exit "$exec_status"
