//! Bad input ends with exit 2, the place (file:line:column) and a message in the script's
//! words, never Rust's: load options, arguments of the wrong type, malformed thresholds and
//! durations (found by `mcpscript check` when they are literals, by `mcpscript run` when they
//! are computed), `mcpscript worker` fed garbage, and `mcpscript merge` given files it cannot
//! merge. A genuine runtime failure stays exit 1.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use tempfile::TempDir;

const BIN: &str = env!("CARGO_BIN_EXE_mcpscript");

fn write(dir: &TempDir, name: &str, src: &str) -> PathBuf {
    let p = dir.path().join(name);
    std::fs::write(&p, src).unwrap();
    p
}

fn mcpscript(dir: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .current_dir(dir)
        .env_remove("MCPSCRIPT_STDLIB")
        .env("MCPSCRIPT_NO_HISTORY", "1")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// No Rust in what a person reads.
fn readable(text: &str) {
    for rust in ["Box<", "EvalAltResult", "ImmutableString", "i64", "i128", "&str", "panicked"] {
        assert!(!text.contains(rust), "'{rust}' in: {text}");
    }
}

/// `mcpscript check NAME` on `src`: exit 2, and every `(place, message)` in its output.
fn check_refuses(src: &str, expected: &[(&str, &str)]) {
    let d = tempfile::tempdir().unwrap();
    write(&d, "s.rhai", src);
    let o = mcpscript(d.path(), &["check", "s.rhai"]);
    let e = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{src}\n{e}");
    for (place, message) in expected {
        assert!(e.contains(&format!("s.rhai:{place}: {message}")), "expected s.rhai:{place}: {message}\nin: {e}");
    }
    readable(&e);
}

/// `mcpscript run NAME` on `src`: exit `code`, the error at `place` with `message`, and the
/// error kind recorded in results.json.
fn run_fails(src: &str, code: i32, place: &str, message: &str, kind: &str) -> String {
    let d = tempfile::tempdir().unwrap();
    write(&d, "s.rhai", src);
    let o = mcpscript(d.path(), &["run", "s.rhai", "-q", "--out", "out", "--timeout", "60s"]);
    let e = stderr(&o);
    assert_eq!(o.status.code(), Some(code), "{src}\n{e}");
    assert!(e.contains(&format!("error: s.rhai:{place}: {message}")), "expected s.rhai:{place}: {message}\nin: {e}");
    readable(&e);
    let r: serde_json::Value =
        serde_json::from_slice(&std::fs::read(d.path().join("out/results.json")).unwrap()).unwrap();
    assert_eq!(r["scenarios"][0]["error"]["kind"], kind, "{r}");
    e
}

#[test]
fn literal_load_options_are_refused_by_check_at_their_place() {
    check_refuses(
        "let r = load::closed(#{sessions: 2, duration: \"5 parsecs\"});\n",
        &[("1:22", "load::closed: duration: invalid duration '5 parsecs': unknown unit")],
    );
    // A map with a computed value is not folded: each problem is at its option.
    check_refuses(
        "let n = 2;\nload::closed(#{sesions: n, duration: \"1s\"});\n",
        &[("2:16", "load::closed: unknown option 'sesions' (did you mean sessions?); options are name, target")],
    );
    check_refuses(
        "load::closed(#{duration: \"1s\", mix: []});\n",
        &[("1:14", "load::closed: mix is empty: give at least one request")],
    );
    check_refuses(
        "load::open(#{rate: -5, duration: \"1s\"});\nload::open(#{rate: 0, duration: \"1s\"});\n",
        &[
            ("1:12", "load::open: rate must be a number above 0, not -5"),
            ("2:12", "load::open: rate must be a number above 0, not 0"),
        ],
    );
    check_refuses(
        "let n = 3;\nload::open(#{rate: n});\nload::connect(#{hold: \"2s\"});\n",
        &[("2:12", "load::open: needs a duration"), ("3:15", "load::connect: needs sessions")],
    );
    check_refuses(
        "load::ramp(#{stages: [#{duration: \"1s\", rat: 5}]});\n",
        &[("1:12", "load::ramp: stage 1: unknown key 'rat' (did you mean rate?)")],
    );
    check_refuses(
        "load::closed(#{duration: \"1s\", backoff: #{initial: \"1s\", max: \"10ms\"}});\n",
        &[("1:14", "load::closed: backoff must be above zero with max >= initial")],
    );
    check_refuses("load::closd(#{});\n", &[("1:7", "namespace 'load' has no function 'closd'")]);
    // The same checks at run time: the script that checks runs.
    let d = tempfile::tempdir().unwrap();
    write(
        &d,
        "fine.rhai",
        "let n = 3;\nlet r = load::closed(#{sessions: n, iterations: 10, mix: [#{method: \"ping\"}]});\n",
    );
    let o = mcpscript(d.path(), &["check", "fine.rhai"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
}

#[test]
fn computed_load_options_exit_2_at_the_call() {
    run_fails(
        "let d = \"5 parsecs\";\nload::closed(#{sessions: 1, duration: d});\n",
        2,
        "2:7",
        "load::closed: duration: invalid duration '5 parsecs': unknown unit",
        "param",
    );
    let e = run_fails(
        "let o = #{sesions: 2, duration: \"1s\"};\nload::closed(o);\n",
        2,
        "2:7",
        "load::closed: unknown option 'sesions' (did you mean sessions?)",
        "param",
    );
    assert!(e.contains(" 2 | load::closed(o);\n   |       ^"), "{e}");
    run_fails(
        "let m = [];\nload::closed(#{duration: \"1s\", mix: m});\n",
        2,
        "2:7",
        "load::closed: mix is empty",
        "param",
    );
    run_fails(
        "let r = 0 - 5;\nload::open(#{rate: r, duration: \"1s\"});\n",
        2,
        "2:7",
        "load::open: rate must be a number above 0, not -5",
        "param",
    );
    run_fails(
        "let r = 0;\nload::open(#{rate: r, duration: \"1s\"});\n",
        2,
        "2:7",
        "load::open: rate must be a number above 0, not 0",
        "param",
    );
}

#[test]
fn malformed_connect_options_targets_faults_and_pids_exit_2_at_the_call() {
    run_fails(
        "let o = #{reconect: true};\nconnect(\"builtin\", o);\n",
        2,
        "2:1",
        "connect: unknown option 'reconect' (did you mean reconnect?)",
        "param",
    );
    run_fails(
        "let o = #{backoff: #{initial: \"1s\", max: \"10ms\"}};\nconnect(\"builtin\", o);\n",
        2,
        "2:1",
        "connect: backoff must be above zero with max >= initial",
        "param",
    );
    run_fails("let t = \"gopher://x\";\nconnect(t);\n", 2, "2:1", "connect: ", "param");
    run_fails(
        "let f = \"latency:latency=5 parsecs\";\nchaos::proxy(\"builtin\", f);\n",
        2,
        "2:8",
        "chaos::proxy: ",
        "param",
    );
    run_fails("let p = 0 - 1;\nmetrics::rss(p);\n", 2, "2:10", "metrics::rss: -1 is not a process id", "param");
}

#[test]
fn wrong_argument_types_say_which_signatures_exist() {
    check_refuses("check(\"yes\", 1);\n", &[("1:1", "wrong argument types: check(string, int)")]);
    let d = tempfile::tempdir().unwrap();
    write(&d, "s.rhai", "check(\"yes\", 1);\n");
    let e = stderr(&mcpscript(d.path(), &["check", "s.rhai"]));
    assert!(
        e.contains(
            "hint: check exists with other parameters: check(cond: bool, message: string) -> bool; \
             check(cond: bool, message: string, detail: string) -> bool"
        ),
        "{e}"
    );
    // One literal is enough to know.
    check_refuses("let v = \"yes\";\ncheck(v, 1);\n", &[("2:1", "wrong argument types: check(_, int)")]);
    let e = run_fails(
        "let v = \"yes\";\nlet n = 1;\ncheck(v, n);\n",
        2,
        "3:1",
        "wrong argument types: check(string, int)",
        "param",
    );
    assert!(e.contains("hint: check exists with other parameters: check(cond: bool, message: string) -> bool"), "{e}");
    // Rhai's own functions, in script words too.
    let e = run_fails("let v = \"x\";\nlet n = abs(v);\n", 2, "2:9", "wrong argument types: abs(string)", "param");
    assert!(e.contains("hint: abs exists with other parameters: abs(x: float) -> float; abs(x: int) -> int"), "{e}");
    let e = run_fails("let v = 5;\nlet n = parse_int(v);\n", 2, "2:9", "wrong argument types: parse_int(int)", "param");
    assert!(e.contains("parse_int(string: string) -> int"), "{e}");
}

#[test]
fn a_malformed_threshold_or_duration_is_bad_input_literal_or_not() {
    check_refuses(
        "threshold(#{p99: 1.0}, \"p99 <\");\nsleep(\"5 parsecs\");\n",
        &[
            ("1:24", "invalid threshold \"p99 <\": missing the limit after '<'"),
            ("2:7", "sleep: invalid duration '5 parsecs'"),
        ],
    );
    run_fails(
        "let r = #{p99: 5.0};\nlet t = \"p99 <\";\nthreshold(r, t);\n",
        2,
        "3:1",
        "invalid threshold \"p99 <\": missing the limit after '<'",
        "param",
    );
    run_fails("let d = \"5 parsecs\";\nsleep(d);\n", 2, "2:1", "sleep: invalid duration '5 parsecs'", "param");
    // Caught and carried on from, bad input does not taint a later, different error.
    run_fails("let d = \"5 parsecs\";\ntry { sleep(d); } catch { }\nlet x = [][1];\n", 1, "3:12", "", "runtime");
}

#[test]
fn a_genuine_runtime_failure_stays_exit_1() {
    // A refused connection is the target's doing, not the script's.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    run_fails(
        &format!("check(true, \"ok\");\nlet s = connect(\"tcp://127.0.0.1:{port}\");\n"),
        1,
        "2:9",
        "connect",
        "runtime",
    );
    // A result without the metric: the measurement did not happen.
    run_fails("let t = \"p99 < 5ms\";\nthreshold(#{}, t);\n", 1, "2:1", "threshold \"p99 < 5ms\"", "runtime");
}

#[test]
fn the_worker_refuses_garbage_on_stdin_with_exit_2() {
    for input in [&b"garbage\n"[..], b"", b"\xff\xfe\n", b"{\"index\": \"x\", \"plan\": 5}\n", b"{\"index\": 0}\n"] {
        let mut child = Command::new(BIN)
            .arg("worker")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(input).unwrap();
        let o = child.wait_with_output().unwrap();
        let e = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{input:?}: {e}");
        assert!(e.starts_with("error: worker: ") && e.contains("started by `mcpscript run`"), "{input:?}: {e}");
        readable(&e);
        if !input.is_empty() && input.is_ascii() {
            // A coordinator still reads why on stdout.
            assert!(String::from_utf8_lossy(&o.stdout).contains("{\"error\":"), "{input:?}");
        }
    }
}

#[test]
fn merge_names_the_file_in_every_refusal() {
    let d = tempfile::tempdir().unwrap();
    write(&d, "a.rhai", "check(true, \"ok\");\n");
    write(&d, "b.rhai", "check(true, \"ok\");\n");
    for (script, out) in [("a.rhai", "a1"), ("a.rhai", "a2"), ("b.rhai", "b1")] {
        let o = mcpscript(d.path(), &["run", script, "-q", "--out", out, "--format", "json"]);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    }
    let good = std::fs::read_to_string(d.path().join("a1/results.json")).unwrap();
    write(&d, "cut.json", &good[..good.len() / 2]);
    write(&d, "v9.json", &good.replace("\"schema_version\": 2", "\"schema_version\": 9"));
    std::fs::create_dir(d.path().join("empty")).unwrap();
    let refused = |args: &[&str], needle: &str| {
        let mut all = vec!["merge"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["--out", "m"]);
        let o = mcpscript(d.path(), &all);
        let e = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {e}");
        assert!(e.contains(needle), "{args:?}: expected '{needle}' in: {e}");
        readable(&e);
    };
    refused(&["a1", "cut.json"], "cut.json is truncated");
    refused(&["a1", "v9.json"], "v9.json has schema_version 9");
    refused(&["a1", "a1/results.json"], "a1 and a1/results.json are the same run");
    refused(&["a1", "empty"], "empty is a folder without a results.json");
    refused(&["a1", "missing.json"], "cannot read missing.json: no such file");
    refused(&["a1", "b1"], "b1 does not fit a1: scenario 'b' does not match scenario 'a'");
    let o = mcpscript(d.path(), &["merge", "a1", "a2", "--out", "m"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
}
