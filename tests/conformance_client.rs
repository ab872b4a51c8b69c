//! mcpscript's client against the official conformance suite's client mode
//! (`@modelcontextprotocol/conformance`, installed by `tests/interop/setup.sh`): for each
//! non-auth scenario the suite starts its test server and runs `tests/conformance/client.sh`
//! (which runs `tests/conformance/client.rhai` with `mcpscript run`); every check of every
//! scenario must pass. Prints the per-scenario table.

mod common;

use common::interop;
use std::process::Command;
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_mcpscript");

const SCENARIOS: [&str; 4] = ["initialize", "tools_call", "elicitation-sep1034-client-defaults", "sse-retry"];

#[test]
fn passes_the_client_scenarios_of_the_conformance_suite() {
    interop::ensure_setup();
    let root = env!("CARGO_MANIFEST_DIR");
    let suite = format!("{root}/tests/interop/node_modules/.bin/conformance");
    let client = format!("bash {root}/tests/conformance/client.sh");
    let out_dir = tempfile::tempdir().unwrap();
    let mut table =
        vec![format!("{:<40} {:>6} {:>6} {:>8}  {}", "scenario", "passed", "failed", "warnings", "verdict")];
    let mut failures = Vec::new();
    for scenario in SCENARIOS {
        let mut cmd = Command::new(&suite);
        cmd.args(["client", "--command", &client, "--scenario", scenario, "-o"])
            .arg(out_dir.path().join(scenario))
            .env("MCPSCRIPT_BIN", BIN)
            .current_dir(root);
        let out = interop::run_bounded(cmd, Duration::from_secs(120)).unwrap();
        let ok = out.status.is_some_and(|s| s.success());
        // The suite prints its tally on stdout or stderr depending on the version.
        let (passed, total, failed, warnings) = interop::conformance_tally(&out.stdout)
            .or_else(|| interop::conformance_tally(&out.stderr))
            .unwrap_or_default();
        let verdict = if ok && failed == 0 && warnings == 0 && passed == total && total > 0 { "PASS" } else { "FAIL" };
        table.push(format!("{scenario:<40} {passed:>3}/{total:<2} {failed:>6} {warnings:>8}  {verdict}"));
        if verdict == "FAIL" {
            failures.push(format!(
                "{scenario}: {}\nstdout:\n{}\nstderr:\n{}",
                interop::describe_status(out.status),
                out.stdout,
                out.stderr
            ));
        }
    }
    println!("{}", table.join("\n"));
    assert!(failures.is_empty(), "{}\n\n{}", table.join("\n"), failures.join("\n\n"));
}
