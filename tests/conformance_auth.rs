//! mcpscript's OAuth client against the auth scenarios of the official conformance suite's
//! client mode (`@modelcontextprotocol/conformance`, installed by `tests/interop/setup.sh`):
//! for each `auth/*` scenario the suite starts its test MCP server and authorization
//! server and runs `tests/conformance/client.sh`, which runs `tests/conformance/auth.rhai`
//! with `--oauth` and the credentials the suite hands over. Every check of every scenario
//! must pass (none needs a person: the suite's authorization server redirects straight
//! back with a code). Prints the per-scenario table.

mod common;

use common::interop;
use std::path::Path;

const BIN: &str = env!("CARGO_BIN_EXE_mcpscript");

const SCENARIOS: [&str; 19] = [
    "auth/metadata-default",
    "auth/metadata-var1",
    "auth/metadata-var2",
    "auth/metadata-var3",
    "auth/basic-cimd",
    "auth/scope-from-www-authenticate",
    "auth/scope-from-scopes-supported",
    "auth/scope-omitted-when-undefined",
    "auth/scope-step-up",
    "auth/scope-retry-limit",
    "auth/token-endpoint-auth-basic",
    "auth/token-endpoint-auth-post",
    "auth/token-endpoint-auth-none",
    "auth/resource-mismatch",
    "auth/pre-registration",
    "auth/2025-03-26-oauth-metadata-backcompat",
    "auth/2025-03-26-oauth-endpoint-fallback",
    "auth/client-credentials-jwt",
    "auth/client-credentials-basic",
];

/// Every file named `name` under `dir`, concatenated.
fn collect(dir: &Path, name: &str) -> String {
    let mut out = String::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.push_str(&collect(&p, name));
            } else if p.file_name().is_some_and(|n| n == name) {
                out.push_str(&std::fs::read_to_string(&p).unwrap_or_default());
            }
        }
    }
    out
}

#[test]
fn passes_the_auth_scenarios_of_the_conformance_suite() {
    interop::ensure_setup();
    let out_dir = tempfile::tempdir().unwrap();
    let mut table =
        vec![format!("{:<44} {:>6} {:>6} {:>8}  {}", "scenario", "passed", "failed", "warnings", "verdict")];
    let mut failures = Vec::new();
    for scenario in SCENARIOS {
        let dir = out_dir.path().join(scenario.replace('/', "_"));
        let (out, tally) = interop::conformance_client(scenario, &dir, BIN);
        let ok = out.status.is_some_and(|s| s.success());
        let (passed, total, failed, warnings) = tally.unwrap_or_default();
        let mut verdict = ok && failed == 0 && warnings == 0 && passed == total && total > 0;
        let client_stderr = collect(&dir, "stderr.txt");
        if scenario == "auth/resource-mismatch" {
            // Refused, and saying why (not some unrelated failure).
            verdict &= client_stderr.contains("evil.example.com") && client_stderr.contains("refusing to authorize");
        }
        let v = if verdict { "PASS" } else { "FAIL" };
        table.push(format!("{scenario:<44} {passed:>3}/{total:<2} {failed:>6} {warnings:>8}  {v}"));
        if !verdict {
            failures.push(format!(
                "{scenario}: {}\nstdout:\n{}\nstderr:\n{}\nclient stderr:\n{client_stderr}\nchecks:\n{}",
                interop::describe_status(out.status),
                out.stdout,
                out.stderr,
                collect(&dir, "checks.json")
            ));
        }
    }
    println!("{}", table.join("\n"));
    assert!(failures.is_empty(), "{}\n\n{}", table.join("\n"), failures.join("\n\n"));
}
