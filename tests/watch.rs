//! `mcpscript watch` driven by a test that edits files: exactly the changed scenarios and
//! their dependents re-run (a module change re-runs its importers), a syntax error is shown
//! with its place and the watcher carries on, saves by rename, delete-and-recreate and
//! bursts of saves each make one re-run.

use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const EXE: &str = env!("CARGO_BIN_EXE_mcpscript");

/// Lines of the watcher's stdout and stderr as they come.
struct Lines {
    rx: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Lines {
    /// Waits for a line containing `want`; fails with everything seen so far.
    fn expect(&mut self, want: &str) -> String {
        let end = Instant::now() + Duration::from_secs(30);
        while let Some(left) = end.checked_duration_since(Instant::now()) {
            match self.rx.recv_timeout(left) {
                Ok(l) => {
                    self.seen.push(l.clone());
                    if l.contains(want) {
                        return l;
                    }
                }
                Err(_) => break,
            }
        }
        panic!("no line with {want:?}; saw:\n{}", self.seen.join("\n"));
    }

    /// Lines seen since the last call that contain `what`.
    fn count_since(&self, from: usize, what: &str) -> usize {
        self.seen[from..].iter().filter(|l| l.contains(what)).count()
    }
}

/// Starts `mcpscript ARGS` in `dir` (history off) with its stdout and stderr read as lines.
fn watch(dir: &Path, args: &[&str]) -> (std::process::Child, Lines) {
    let mut child = Command::new(EXE)
        .args(args)
        .current_dir(dir)
        .env("MCPSCRIPT_NO_HISTORY", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = mpsc::channel();
    for stream in [
        Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
        Box::new(child.stderr.take().unwrap()),
    ] {
        let tx = tx.clone();
        std::thread::spawn(move || {
            for l in BufReader::new(stream).lines().map_while(Result::ok) {
                let _ = tx.send(l);
            }
        });
    }
    (child, Lines { rx, seen: vec![] })
}

/// Writes like an editor that saves to a temp file and renames it over the original.
fn save_by_rename(path: &Path, text: &str) {
    let tmp = path.with_extension("rhai.swp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

#[test]
fn watch_reruns_exactly_what_changed_and_survives_a_syntax_error() {
    let dir = tempfile::tempdir().unwrap();
    let w = |name: &str, text: &str| std::fs::write(dir.path().join(name), text).unwrap();
    w("suite.yaml", "name: w\nparallelism: 2\nscenarios: [a.yaml, b.yaml, c.yaml, d.yaml]\n");
    for (n, deps) in [("a", ""), ("b", "depends_on: [a]\n"), ("c", ""), ("d", "depends_on: [b]\n")] {
        w(&format!("{n}.yaml"), &format!("name: {n}\nscript: {n}.rhai\nresources: {{connections: 0}}\n{deps}"));
    }
    let a_text = "import \"common\" as common;\ncheck(common::yes(), \"a\");\n";
    std::fs::create_dir(dir.path().join("stdlib")).unwrap();
    w("stdlib/common.rhai", "fn yes() { true }\n");
    w("a.rhai", a_text);
    w("b.rhai", "metric(\"b_value\", 1.0);\ncheck(true, \"b\");\n");
    w("c.rhai", "import \"helpers\" as h;\ncheck(h::ok(), \"helpers say ok\");\n");
    w("d.rhai", "check(true, \"d\");\n");
    w("helpers.rhai", "fn ok() { true }\n");

    let (mut child, mut lines) =
        watch(dir.path(), &["watch", "suite.yaml", "--out", "out", "--max-runs", "5", "--debounce", "200ms", "-q"]);
    lines.expect("run 1: all 4 scenarios");
    lines.expect("watching for changes");

    // An editor's save by rename: b and its dependent d re-run, nothing else.
    save_by_rename(&dir.path().join("b.rhai"), "metric(\"b_value\", 2.0);\ncheck(true, \"b\");\n");
    assert_eq!(lines.expect("run 2:"), "run 2: re-running b, d (changed: b)");
    lines.expect("b: still passed");
    lines.expect("b_value 1 -> 2 (+100.0%)");
    lines.expect("watching for changes");

    // A syntax error is shown with its place; the watcher keeps going.
    w("a.rhai", "let x = ;\n");
    lines.expect("a.rhai:1:9: syntax error");
    lines.expect("the suite did not validate");
    // Back to what last ran: nothing to re-run.
    w("a.rhai", a_text);
    lines.expect("validated: no scenario changed");

    // A module deleted and recreated: its importer re-runs.
    std::fs::remove_file(dir.path().join("helpers.rhai")).unwrap();
    // Kept fixed (pacing): the delete and the re-create are separate events for the watcher.
    std::thread::sleep(Duration::from_millis(50));
    w("helpers.rhai", "fn ok() { 1 + 1 == 2 }\n");
    assert_eq!(lines.expect("run 3:"), "run 3: re-running c (changed: c)");
    lines.expect("watching for changes");

    // A stdlib module: every scenario importing it re-runs, with its dependents.
    w("stdlib/common.rhai", "fn yes() { 2 > 1 }\n");
    assert_eq!(lines.expect("run 4:"), "run 4: re-running a, b, d (changed: a)");
    lines.expect("watching for changes");

    // A burst of saves is one re-run.
    let from = lines.seen.len();
    for i in 0..5 {
        w("d.rhai", &format!("check(true, \"d {i}\");\n"));
        // Kept fixed (pacing): a burst of saves spread within the debounce window.
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(lines.expect("run 5:"), "run 5: re-running d (changed: d)");
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0), "the watcher stops after --max-runs");
    assert_eq!(lines.count_since(from, "run "), 1);
    let r: Value = serde_json::from_slice(&std::fs::read(dir.path().join("out/results.json")).unwrap()).unwrap();
    let names: Vec<&str> = r["scenarios"].as_array().unwrap().iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["a", "b", "c", "d"], "the record holds the whole suite, carried over where nothing changed");
    assert_eq!(r["summary"]["total_tests"], 4);
    assert_eq!(r["scenarios"][3]["checks"][0]["name"], "d 4", "the last save of the burst ran");
    assert_eq!(r["scenarios"][2]["checks"][0]["name"], "helpers say ok", "c's result from run 3 carried over");
}

/// Runs `mcpscript ARGS` in `dir`, failing the test if it has not exited within `limit`.
fn exits_within(dir: &Path, args: &[&str], limit: Duration) -> (i32, String) {
    let mut child = Command::new(EXE)
        .args(args)
        .current_dir(dir)
        .env("MCPSCRIPT_NO_HISTORY", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let end = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
            return (status.code().unwrap_or(-1), err);
        }
        if Instant::now() > end {
            let _ = child.kill();
            let _ = child.wait();
            panic!("mcpscript {args:?} still running after {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn watch_exits_2_on_input_that_never_validated() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("broken.rhai"), "let x = ;\n").unwrap();
    let (code, err) = exits_within(dir.path(), &["watch", "nope.yaml"], Duration::from_secs(5));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("nope.yaml"), "{err}");
    let (code, err) = exits_within(dir.path(), &["watch", "broken.rhai"], Duration::from_secs(5));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("broken.rhai:1"), "{err}");
}

#[test]
fn watch_a_single_script_reruns_it_on_save() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("one.rhai");
    std::fs::write(&script, "check(true, \"first\");\n").unwrap();
    let (mut child, mut lines) =
        watch(dir.path(), &["watch", "one.rhai", "--out", "out", "--max-runs", "2", "--debounce", "200ms"]);
    lines.expect("ok   first");
    lines.expect("watching one.rhai for changes");
    save_by_rename(&script, "check(true, \"second\");\n");
    lines.expect("changed:");
    lines.expect("ok   second");
    let end = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < end, "the watcher did not stop after --max-runs 2");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(0));
    let r: Value = serde_json::from_slice(&std::fs::read(dir.path().join("out/results.json")).unwrap()).unwrap();
    assert_eq!(r["scenarios"][0]["checks"][0]["name"], "second");
}
