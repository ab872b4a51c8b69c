#!/usr/bin/env bash
# Installs what the tests need beyond the Rust toolchain, idempotently:
#   - Debian's chromium (tests/report_html.rs renders report.html headless) and
#     libxml2-utils (xmllint: tests/report_formats.rs validates junit.xml against its XSD),
#     when missing and apt-get is usable (as root); otherwise those tests say they skip;
#   - the official MCP SDKs for the interop tests (tests/interop/setup.sh).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

missing=()
[ -x /usr/bin/chromium ] || missing+=(chromium)
command -v xmllint >/dev/null 2>&1 || missing+=(libxml2-utils)
if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "tests/setup.sh: installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" </dev/null >/dev/null
  else
    echo "tests/setup.sh: ${missing[*]} missing and cannot be installed here (needs root and apt-get): the tests that use them will skip" >&2
  fi
fi

bash tests/interop/setup.sh
