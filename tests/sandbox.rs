//! The script sandbox and `stdio:` targets, through the real binary: a script may spawn
//! only the run's own stdio target (`--target`, a suite's `target:`) unless the run allows
//! it (`--allow-spawn`, a suite's `allow_spawn: true`). Every entry point that opens a
//! target (`connect(url)`, `connect(url, options)`, a load phase's `target`, a chaos
//! proxy's upstream) refuses any other with a located script error, which `try` can catch
//! but which never runs the command; `check` reports literal ones before anything runs.

use serde_json::Value;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

const EXE: &str = env!("CARGO_BIN_EXE_mcpscript");

/// The words every refusal names.
const RULE: &str = "would spawn a process";

/// A real stdio MCP server: mcpscript's built-in one on stdin/stdout.
fn stdio_server() -> String {
    format!("stdio:{EXE} serve --stdio")
}

/// A folder holding scripts, their reports and the marker a spawned command would create.
struct Dir {
    dir: tempfile::TempDir,
}

impl Dir {
    fn new() -> Dir {
        Dir { dir: tempfile::tempdir().unwrap() }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn write(&self, name: &str, text: &str) {
        std::fs::write(self.path(name), text).unwrap();
    }

    /// The file a command that ran would have created.
    fn marker(&self) -> PathBuf {
        self.path("MARKER")
    }

    /// A `stdio:` target that creates the marker when it is spawned.
    fn door(&self) -> String {
        format!("stdio:sh -c 'touch {}'", self.marker().display())
    }

    fn cmd(&self, args: &[&str]) -> Output {
        Command::new(EXE)
            .args(args)
            .current_dir(self.dir.path())
            .env("MCPSCRIPT_NO_HISTORY", "1")
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    /// `mcpscript run FILE --out out -q EXTRA...`; the output and results.json (Null if none).
    fn run(&self, file: &str, extra: &[&str]) -> (Output, Value) {
        let _ = std::fs::remove_dir_all(self.path("out"));
        let mut args = vec!["run", file, "--out", "out", "-q"];
        args.extend_from_slice(extra);
        let out = self.cmd(&args);
        let results = std::fs::read(self.path("out/results.json"))
            .map(|b| serde_json::from_slice(&b).unwrap())
            .unwrap_or(Value::Null);
        (out, results)
    }

    /// Writes `script` as `NAME.rhai` and runs it.
    fn run_script(&self, name: &str, script: &str, extra: &[&str]) -> (Output, Value) {
        let file = format!("{name}.rhai");
        self.write(&file, script);
        self.run(&file, extra)
    }
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn scenario<'a>(r: &'a Value, name: &str) -> &'a Value {
    r["scenarios"].as_array().unwrap().iter().find(|s| s["name"] == name).unwrap_or_else(|| panic!("no {name} in {r}"))
}

/// The refusal as the run reports it: exit 1, `FILE:LINE:COL` of the call, the rule and the
/// way to allow it; the command never ran.
fn assert_refused(d: &Dir, out: &Output, r: &Value, file: &str, line: usize) {
    let err = stderr(out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains(&format!("{file}:{line}:")), "no location {file}:{line} in: {err}");
    assert!(err.contains(RULE) && err.contains("--allow-spawn"), "{err}");
    let e = &r["scenarios"][0]["error"];
    assert_eq!(e["line"], line, "{e}");
    assert!(e["column"].as_u64().is_some(), "{e}");
    assert!(e["message"].as_str().unwrap().contains("--allow-spawn"), "{e}");
    assert!(!d.marker().exists(), "the refused command ran");
}

#[test]
fn a_caught_refusal_still_runs_nothing() {
    let d = Dir::new();
    let script = format!(
        "try {{ connect(\"{door}\"); }} catch (e) {{ log(e); }}\n\
         try {{ connect(\"{door}\", #{{reconnect: true}}); }} catch (e) {{ log(e); }}\n\
         check(true, \"survived\");\n",
        door = d.door()
    );
    let (out, r) = d.run_script("door", &script, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(!d.marker().exists(), "the command in connect(\"stdio:...\") ran");
    let logs = r["scenarios"][0]["logs"].as_array().unwrap();
    assert_eq!(logs.len(), 2, "{logs:?}");
    for l in logs {
        let m = l["message"].as_str().unwrap();
        assert!(m.contains(RULE) && m.contains("--allow-spawn"), "{m}");
    }
}

#[test]
fn connect_to_another_stdio_command_is_a_located_error() {
    let d = Dir::new();
    let script = format!("let x = 1;\nlet s = connect(\"{}\");\n", d.door());
    let (out, r) = d.run_script("one", &script, &[]);
    assert_refused(&d, &out, &r, "one.rhai", 2);
    assert!(r["scenarios"][0]["error"]["message"].as_str().unwrap().starts_with("connect: "), "{r}");

    let script = format!("let x = 1;\n\nlet s = connect(\"{}\", #{{reconnect: false}});\n", d.door());
    let (out, r) = d.run_script("two", &script, &[]);
    assert_refused(&d, &out, &r, "two.rhai", 3);
}

#[test]
fn load_phase_targets_obey_the_same_rule() {
    let d = Dir::new();
    for (i, phase) in [
        "load::closed(#{target: T, sessions: 1, iterations: 1})",
        "load::open(#{target: T, rate: 10, duration: \"200ms\"})",
        "load::connect(#{target: T, sessions: 1, rate: 10, hold: \"10ms\"})",
    ]
    .iter()
    .enumerate()
    {
        let script = format!("let T = \"{}\";\nlet r = {phase};\n", d.door());
        let (out, r) = d.run_script(&format!("load{i}"), &script, &[]);
        assert_refused(&d, &out, &r, &format!("load{i}.rhai"), 2);
        let m = r["scenarios"][0]["error"]["message"].as_str().unwrap();
        assert!(m.starts_with("load::"), "{m}");
    }
}

#[test]
fn a_chaos_proxy_upstream_obeys_the_same_rule() {
    let d = Dir::new();
    let script = format!("let p = chaos::proxy(\"{}\");\n", d.door());
    // Against a plain target the run starts no managed server for `chaos::`.
    let (out, r) = d.run_script("proxy", &script, &["--target", "tcp://127.0.0.1:9"]);
    assert_refused(&d, &out, &r, "proxy.rhai", 1);
    assert!(r["scenarios"][0]["error"]["message"].as_str().unwrap().starts_with("chaos::proxy: "), "{r}");
}

#[test]
fn allow_spawn_lets_a_script_open_a_stdio_server() {
    let d = Dir::new();
    let script = format!(
        "let s = connect(\"{}\");\ncheck(s.ping().ok, \"ping over stdio\");\n\
         check(s.tool(\"echo\", #{{message: \"hi\"}}).result.content[0].text == \"Echo: hi\", \"echo\");\n\
         s.close();\n",
        stdio_server()
    );
    let (out, r) = d.run_script("allowed", &script, &["--allow-spawn"]);
    assert_eq!(out.status.code(), Some(0), "{} {r}", stderr(&out));
    assert_eq!(r["scenarios"][0]["status"], "passed", "{r}");

    // The same without the flag is refused.
    let (out, r) = d.run_script("allowed", &script, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(r["scenarios"][0]["error"]["message"].as_str().unwrap().contains(RULE), "{r}");

    // And the flag really opens the door: the command runs.
    let script = format!("try {{ connect(\"{}\"); }} catch (e) {{ }}\n", d.door());
    let (out, _) = d.run_script("door", &script, &["--allow-spawn"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(d.marker().exists(), "--allow-spawn did not let the command run");
}

#[test]
fn the_runs_own_stdio_target_needs_no_flag() {
    let d = Dir::new();
    let script = format!(
        "let a = connect();\ncheck(a.ping().ok, \"connect()\");\n\
         let b = connect(\"{server}\");\ncheck(b.ping().ok, \"connect(the run's target)\");\n\
         let c = connect(\"{server}\", #{{reconnect: true}});\ncheck(c.ping().ok, \"with options\");\n\
         check(target() == \"{server}\", \"target()\");\n",
        server = stdio_server()
    );
    let (out, r) = d.run_script("own", &script, &["--target", &stdio_server()]);
    assert_eq!(out.status.code(), Some(0), "{} {r}", stderr(&out));
    assert_eq!(r["scenarios"][0]["status"], "passed", "{r}");

    // The run's own target does not let any other stdio command through.
    let script = format!("let a = connect();\nlet b = connect(\"{}\");\n", d.door());
    let (out, r) = d.run_script("other", &script, &["--target", &stdio_server()]);
    assert_refused(&d, &out, &r, "other.rhai", 2);
}

/// A suite against the stdio server: `ok` connects to it, `door` to another command.
fn stdio_suite(d: &Dir, extra: &str) {
    d.write(
        "suite.yaml",
        &format!("name: s\ntarget: \"{}\"\n{extra}scenarios: [ok.yaml, door.yaml]\n", stdio_server()),
    );
    d.write("ok.yaml", "name: ok\nscript: ok.rhai\n");
    d.write("ok.rhai", "let s = connect();\ncheck(s.ping().ok, \"ping over the suite's stdio target\");\n");
    d.write("door.yaml", "name: door\nscript: door.rhai\n");
    d.write(
        "door.rhai",
        &format!("check(true, \"started\");\nlet s = connect(\"{}\");\ncheck(true, \"after\");\n", d.door()),
    );
}

#[test]
fn a_suite_spawns_its_own_stdio_target_but_not_another() {
    let d = Dir::new();
    stdio_suite(&d, "");
    let (out, r) = d.run("suite.yaml", &[]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert_eq!(scenario(&r, "ok")["status"], "passed", "{r}");
    let door = scenario(&r, "door");
    assert_eq!(door["status"], "failed", "{door}");
    let e = &door["error"];
    assert_eq!(e["line"], 2, "{e}");
    assert!(e["file"].as_str().unwrap().ends_with("door.rhai"), "{e}");
    let m = e["message"].as_str().unwrap();
    assert!(m.contains(RULE) && m.contains("--allow-spawn") && m.contains("allow_spawn: true"), "{m}");
    assert!(!d.marker().exists(), "the refused command ran");

    // `--allow-spawn` on the command line lets it run.
    let (_, r) = d.run("suite.yaml", &["--allow-spawn"]);
    assert_eq!(scenario(&r, "ok")["status"], "passed", "{r}");
    assert!(d.marker().exists(), "--allow-spawn did not let the suite's script spawn");
}

#[test]
fn a_suite_file_may_allow_spawning() {
    let d = Dir::new();
    stdio_suite(&d, "allow_spawn: true\n");
    let (_, r) = d.run("suite.yaml", &[]);
    assert_eq!(scenario(&r, "ok")["status"], "passed", "{r}");
    // The command ran; it is no MCP server, so the connect itself fails.
    assert!(d.marker().exists(), "allow_spawn: true did not let the script spawn");
    let m = scenario(&r, "door")["error"]["message"].as_str().unwrap().to_string();
    assert!(!m.contains(RULE), "{m}");

    // A misspelt key is refused with the right one suggested.
    stdio_suite(&d, "allow_spwan: true\n");
    let (out, _) = d.run("suite.yaml", &[]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("suite.yaml:3:") && err.contains("allow_spawn"), "{err}");
}

#[test]
fn check_reports_literal_stdio_targets() {
    let d = Dir::new();
    let script = format!(
        "let a = connect(\"{door}\");\n\
         let r = load::closed(#{{target: \"{door}\", sessions: 1, iterations: 1}});\n\
         let p = chaos::proxy(\"{door}\");\n\
         let own = connect(\"{server}\");\n",
        door = d.door(),
        server = stdio_server()
    );
    d.write("c.rhai", &script);
    let out = d.cmd(&["check", "c.rhai", "--target", &stdio_server()]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    for line in 1..=3 {
        assert!(err.contains(&format!("c.rhai:{line}:")), "line {line} not reported: {err}");
    }
    assert!(!err.contains("c.rhai:4:"), "the run's own target was reported: {err}");
    assert!(err.contains(RULE) && err.contains("--allow-spawn"), "{err}");

    let out = d.cmd(&["check", "c.rhai", "--allow-spawn"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(!d.marker().exists());
}

/// Twelve 20 MB strings in separate variables: each within the per-value limits, together
/// 240 MB.
const HOARDER: &str = r#"
let base = "x";
base.pad(20000000, 'x');
let a0 = base + "0"; let a1 = base + "1"; let a2 = base + "2"; let a3 = base + "3";
let a4 = base + "4"; let a5 = base + "5"; let a6 = base + "6"; let a7 = base + "7";
let a8 = base + "8"; let a9 = base + "9"; let a10 = base + "10"; let a11 = base + "11";
log("held them all");
"#;

#[test]
fn a_script_holding_too_much_memory_is_stopped_with_the_reason() {
    let d = tempfile::tempdir().unwrap();
    let script = d.path().join("hoard.rhai");
    std::fs::write(&script, HOARDER).unwrap();
    let run = |limit: &str| {
        Command::new(EXE)
            .args(["run", script.to_str().unwrap(), "--no-history", "-q", "--max-memory", limit, "--out"])
            .arg(d.path().join(format!("out-{limit}")))
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    let out = run("150MiB");
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("memory grew past its limit (--max-memory)") && err.contains("hoard.rhai:"), "{err}");
    assert!(!err.contains("held them all"), "{err}");
    let out = run("0");
    assert_eq!(out.status.code(), Some(0), "unlimited: {}", stderr(&out));
    let out = run("lots");
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
}
