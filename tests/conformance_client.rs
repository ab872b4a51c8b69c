//! mcpscript's client against the official conformance suite's client mode
//! (`@modelcontextprotocol/conformance`, installed by `tests/interop/setup.sh`): for each
//! non-auth scenario the suite starts its test server and runs `tests/conformance/client.sh`
//! (which runs `tests/conformance/client.rhai` with `mcpscript run`); every check of every
//! scenario must pass. Prints the per-scenario table.

mod common;

use common::interop;

const BIN: &str = env!("CARGO_BIN_EXE_mcpscript");

const SCENARIOS: [&str; 4] = ["initialize", "tools_call", "elicitation-sep1034-client-defaults", "sse-retry"];

#[test]
fn passes_the_client_scenarios_of_the_conformance_suite() {
    interop::ensure_setup();
    let out_dir = tempfile::tempdir().unwrap();
    let mut table =
        vec![format!("{:<40} {:>6} {:>6} {:>8}  {}", "scenario", "passed", "failed", "warnings", "verdict")];
    let mut failures = Vec::new();
    for scenario in SCENARIOS {
        let (out, tally) = interop::conformance_client(scenario, &out_dir.path().join(scenario), BIN);
        let ok = out.status.is_some_and(|s| s.success());
        let (passed, total, failed, warnings) = tally.unwrap_or_default();
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
