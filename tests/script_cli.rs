//! `mcpscript run`, `check` and `api` through the compiled binary: exit codes, what a
//! person reads on stderr, and the results.json a run leaves behind. Runs use the default
//! target, the built-in server the binary starts for itself.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

const BIN: &str = env!("CARGO_BIN_EXE_mcpscript");

fn tempdir() -> TempDir {
    tempfile::tempdir().unwrap()
}

fn write(dir: &TempDir, name: &str, src: &str) -> PathBuf {
    let p = dir.path().join(name);
    std::fs::write(&p, src).unwrap();
    p
}

fn mcpscript(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env_remove("MCPSCRIPT_STDLIB")
        .env("MCPSCRIPT_NO_HISTORY", "1")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// `mcpscript run SCRIPT --out DIR/out ARGS...`
fn run(dir: &TempDir, script: &Path, args: &[&str]) -> Output {
    let out = dir.path().join("out");
    let mut all = vec!["run", script.to_str().unwrap(), "--out", out.to_str().unwrap()];
    all.extend_from_slice(args);
    mcpscript(&all)
}

fn results(dir: &TempDir) -> Value {
    serde_json::from_slice(&std::fs::read(dir.path().join("out/results.json")).expect("results.json was written"))
        .unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn a_syntax_error_shows_file_line_column_source_and_caret_and_exits_2() {
    let d = tempdir();
    let f = write(&d, "syntax.rhai", "let x = 1;\nlet y = foo(x, ;\n");
    let o = run(&d, &f, &[]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let e = stderr(&o);
    assert!(e.contains(&format!("error: {}:2:16: syntax error", f.display())), "{e}");
    assert!(e.contains(" 2 | let y = foo(x, ;\n   |                ^"), "{e}");
    assert!(!d.path().join("out/results.json").exists(), "nothing ran, nothing is written");
}

#[test]
fn a_runtime_error_prints_the_stack_and_still_writes_results() {
    let d = tempdir();
    let f = write(
        &d,
        "boom.rhai",
        "fn inner(x) {\n    x.missing.field\n}\nfn outer(y) { inner(y) }\nstage(\"work\", || {\n    check(true, \"ok\");\n    outer(#{});\n});\n",
    );
    let o = run(&d, &f, &["-q"]);
    assert_eq!(o.status.code(), Some(1));
    let e = stderr(&o);
    let file = f.display().to_string();
    assert!(e.contains(&format!("error: {file}:2:15: ")), "{e}");
    assert!(e.contains(&format!("in fn 'inner' called at {file}:4:15")), "{e}");
    assert!(e.contains(&format!("in fn 'outer' called at {file}:7:5")), "{e}");
    assert!(e.contains(&format!("in stage 'work' called at {file}:5:1")), "{e}");
    assert!(stdout(&o).is_empty(), "--quiet prints nothing on stdout");
    let r = results(&d);
    assert_eq!(r["status"], "failed");
    let s = &r["scenarios"][0];
    assert_eq!(s["error"]["kind"], "runtime");
    assert_eq!(s["error"]["line"], 2);
    assert_eq!(s["error"]["stack"].as_array().unwrap().len(), 3);
    assert_eq!(s["stages"][0]["status"], "failed");
    assert_eq!(r["summary"]["passed_assertions"], 1);
}

#[test]
fn an_unknown_function_suggests_the_nearest_name_and_exits_2() {
    let d = tempdir();
    let f = write(&d, "typo.rhai", "let s = conect();\n");
    let o = run(&d, &f, &[]);
    assert_eq!(o.status.code(), Some(2));
    let e = stderr(&o);
    assert!(e.contains("1:9: unknown function 'conect'") && e.contains("hint: did you mean connect?"), "{e}");
}

#[test]
fn a_wrong_typed_set_value_names_the_parameter_and_type() {
    let d = tempdir();
    let f = write(
        &d,
        "params.rhai",
        "let n = param(\"connections\", 10);\nlet w = param(\"wait\", \"1s\");\ncheck(n > 0, \"n\");\n",
    );
    let o = run(&d, &f, &["--set", "connections=lots"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("--set connections=lots: parameter 'connections' expects an integer (its default is 10)"),
        "{}",
        stderr(&o)
    );
    let o = run(&d, &f, &["--set", "wait=10"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("parameter 'wait' expects a duration such as 250ms or 5s"), "{}", stderr(&o));
    let o = run(&d, &f, &["--set", "conections=5"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("did you mean connections?"), "{}", stderr(&o));
    let o = run(&d, &f, &["-q", "--set", "connections=5", "--set", "wait=20ms"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(results(&d)["scenarios"][0]["params"]["connections"], 5);
}

#[test]
fn bad_arguments_exit_2() {
    let d = tempdir();
    let f = write(&d, "ok.rhai", "check(true, \"fine\");\n");
    for (args, needle) in [
        (vec!["--set", "novalue"], "expected KEY=VALUE"),
        (vec!["--timeout", "5"], "--timeout: invalid duration '5'"),
        (vec!["--target", "ftp://x"], "unknown scheme 'ftp'"),
        (vec!["--request-timeout", "soon"], "--request-timeout"),
    ] {
        let o = run(&d, &f, &args);
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        assert!(stderr(&o).contains(needle), "{args:?}: {}", stderr(&o));
    }
    let o = mcpscript(&["run", "/nonexistent/x.rhai"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("cannot read the script"), "{}", stderr(&o));
    let o = mcpscript(&["run", write(&d, "notes.txt", "").to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn a_passing_run_writes_the_result_tree_with_its_summary() {
    let d = tempdir();
    let f = write(
        &d,
        "tree.rhai",
        r#"
        import "stats" as stats;
        let s = connect();
        stage("outer", || {
            check(s.ping().ok, "ping");
            stage("inner", || {
                let lat = [];
                for i in 0..20 { lat.push(s.tool("echo", #{message: "x"}).latency_ms); }
                threshold(stats::summary(lat), "p99 < 1s");
                metric("echo_p50_ms", stats::median(lat), #{unit: "ms", better: "lower"});
            });
        });
        "#,
    );
    let o = run(&d, &f, &["--seed", "9"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let text = stdout(&o);
    assert!(text.contains("against builtin (tcp://127.0.0.1:") && text.contains("(seed 9)"), "{text}");
    assert!(text.contains("passed    outer") && text.contains("  passed    inner"), "{text}");
    assert!(text.contains("echo_p50_ms = ") && text.contains("PASSED in"), "{text}");
    let r = results(&d);
    assert_eq!(r["schema"], "mcpscript.results/2");
    assert_eq!(r["schema_version"], 2);
    assert_eq!(r["status"], "passed");
    let sum = &r["summary"];
    for key in [
        "total_tests",
        "passed_tests",
        "failed_tests",
        "skipped_tests",
        "pass_rate",
        "total_assertions",
        "passed_assertions",
        "assertion_pass_rate",
    ] {
        assert!(sum.get(key).is_some(), "summary lacks {key}: {sum}");
    }
    assert_eq!(
        (sum["total_tests"].as_u64(), sum["passed_tests"].as_u64(), sum["total_assertions"].as_u64()),
        (Some(1), Some(1), Some(2))
    );
    assert_eq!(sum["assertion_pass_rate"], 1.0);
    let s = &r["scenarios"][0];
    assert_eq!((s["name"].as_str(), s["seed"].as_u64()), (Some("tree"), Some(9)));
    let outer = &s["stages"][0];
    let inner = &outer["stages"][0];
    assert_eq!((outer["name"].as_str(), inner["name"].as_str()), (Some("outer"), Some("inner")));
    assert_eq!(outer["assertions"]["passed"], 2);
    assert_eq!(inner["checks"][0]["kind"], "threshold");
    assert!(inner["duration_ms"].as_f64().unwrap() <= outer["duration_ms"].as_f64().unwrap());
    assert_eq!(inner["metrics"][0]["stage"], "outer/inner");
    assert_eq!(r["metrics"][0]["name"], "echo_p50_ms");
    assert_eq!(r["metrics"][0]["scenario"], "tree");
    assert_eq!(r["metrics"][0]["better"], "lower");
}

#[test]
fn a_failed_check_exits_1() {
    let d = tempdir();
    let f = write(&d, "fails.rhai", "check(1 + 1 == 3, \"arithmetic\", \"1 + 1 is 2\");\n");
    let o = run(&d, &f, &[]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stdout(&o).contains("FAIL arithmetic -- 1 + 1 is 2"), "{}", stdout(&o));
    assert!(stdout(&o).contains("FAILED in ") && stdout(&o).contains(": 0 of 1 checks passed"), "{}", stdout(&o));
    assert_eq!(results(&d)["summary"]["failed_assertions"], 1);
    let f = write(&d, "errs.rhai", "check(true, \"fine\");\nlet x = [][1];\n");
    let o = run(&d, &f, &[]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stdout(&o).contains("the script stopped on an error; 1 of 1 checks passed"), "{}", stdout(&o));
}

#[test]
fn a_runaway_loop_is_stopped_with_a_clear_message() {
    let d = tempdir();
    let f = write(&d, "spin.rhai", "let i = 0;\nwhile true { i += 1; }\n");
    let o = run(&d, &f, &["--max-operations", "200000"]);
    assert_eq!(o.status.code(), Some(1));
    let e = stderr(&o);
    assert!(e.contains("exceeded its limit of 200000 operations and was stopped: a runaway loop?"), "{e}");
    assert!(e.contains("--max-operations"), "{e}");
    assert_eq!(results(&d)["scenarios"][0]["error"]["kind"], "limit");
}

#[test]
fn a_timeout_stops_the_script_and_marks_it() {
    let d = tempdir();
    let f = write(&d, "slow.rhai", "let s = connect();\ns.tool(\"sleep\", #{duration: \"30s\"});\n");
    let t0 = Instant::now();
    let o = run(&d, &f, &["--timeout", "500ms"]);
    assert!(t0.elapsed() < Duration::from_secs(10));
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("ran out of time (--timeout)"), "{}", stderr(&o));
    let r = results(&d);
    assert_eq!((r["status"].as_str(), r["scenarios"][0]["error"]["kind"].as_str()), (Some("timeout"), Some("timeout")));
}

#[test]
fn ctrl_c_cancels_writes_results_and_exits_130() {
    use std::io::{BufRead, BufReader};
    let d = tempdir();
    let f = write(&d, "wait.rhai", "stage(\"waiting\", || { log(\"ready\"); sleep(\"30s\"); });\n");
    let out = d.path().join("out");
    let mut child = Command::new(BIN)
        .args(["run", f.to_str().unwrap(), "--out", out.to_str().unwrap(), "--no-history"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut reader = BufReader::new(child.stdout.take().unwrap());
    // Wait until the script is inside its stage, about to block in sleep().
    let mut errors = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    while !line.contains("ready") {
        line.clear();
        assert!(errors.read_line(&mut line).unwrap() > 0, "the script ended before logging");
    }
    // Kept fixed: after "ready" nothing shows that sleep() has begun; this lets it begin.
    std::thread::sleep(Duration::from_millis(50));
    let t0 = Instant::now();
    // SAFETY: sending a signal to our own child process.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGINT) }, 0);
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut reader, &mut rest).unwrap();
    std::io::Read::read_to_string(&mut errors, &mut line).unwrap();
    let status = child.wait().unwrap();
    assert!(t0.elapsed() < Duration::from_secs(10));
    assert!(rest.starts_with("mcpscript run") && rest.contains("cancelled waiting"), "{rest}");
    assert!(line.contains("interrupted: stopping the script"), "{line}");
    assert_eq!(status.code(), Some(130));
    let r = results(&d);
    assert_eq!(r["status"], "cancelled");
    assert_eq!(r["scenarios"][0]["stages"][0]["status"], "cancelled");
}

#[test]
fn check_validates_without_running() {
    let d = tempdir();
    let f = write(&d, "good.rhai", "import \"stats\" as stats;\nlet n = param(\"n\", 3);\nlet s = connect();\n");
    let o = mcpscript(&["check", f.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stdout(&o).contains("compiles and validates (parameters: n; imports: stats)"), "{}", stdout(&o));
    let o = mcpscript(&["check", f.to_str().unwrap(), "--set", "n=x"]);
    assert_eq!(o.status.code(), Some(2));
    let bad = write(&d, "bad.rhai", "let x = undefined_var + 1;\n");
    let o = mcpscript(&["check", bad.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("1:9: syntax error: Undefined variable: undefined_var"), "{}", stderr(&o));
}

#[test]
fn api_output_matches_the_committed_reference() {
    let o = mcpscript(&["api"]);
    assert_eq!(o.status.code(), Some(0));
    let committed = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/stdlib/API.md")).unwrap();
    assert!(
        stdout(&o) == committed,
        "stdlib/API.md is out of date: regenerate it with `cargo run -- api > stdlib/API.md`"
    );
    let o = mcpscript(&["api", "--json"]);
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(v["connections"].as_array().unwrap().iter().any(|f| f["name"] == "connect"));
}

#[test]
fn the_example_experiment_runs() {
    let d = tempdir();
    let f = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/examples/first.rhai"));
    let o = run(&d, f, &["--set", "rounds=20", "--set", "sizes=[100, 1000]", "--set", "p99_limit=2s"]);
    assert_eq!(o.status.code(), Some(0), "{}\n{}", stdout(&o), stderr(&o));
    let r = results(&d);
    assert_eq!(r["summary"]["failed_assertions"], 0);
    assert_eq!(r["metrics"].as_array().unwrap().len(), 4);
}
