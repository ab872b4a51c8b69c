//! Suites end to end through the real binary: ordering, parallelism, resources, skips,
//! timeouts, cancellation, child processes, and every kind of bad input (exit 2 with place).

mod common;

use common::wait_until;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const EXE: &str = env!("CARGO_BIN_EXE_mcpscript");

/// A temporary suite folder.
struct Fixture {
    dir: tempfile::TempDir,
}

impl Fixture {
    fn new(suite: &str) -> Fixture {
        let f = Fixture { dir: tempfile::tempdir().unwrap() };
        f.write("suite.yaml", suite);
        f
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn write(&self, name: &str, text: &str) {
        std::fs::write(self.path(name), text).unwrap();
    }

    /// A manifest `NAME.yaml` (with `extra` lines) and its script `NAME.rhai`.
    fn scenario(&self, name: &str, extra: &str, script: &str) {
        self.write(&format!("{name}.yaml"), &format!("name: {name}\nscript: {name}.rhai\n{extra}"));
        self.write(&format!("{name}.rhai"), script);
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(EXE);
        c.args(args).current_dir(self.dir.path()).env("MCPSCRIPT_NO_HISTORY", "1");
        c
    }

    fn run(&self, extra: &[&str]) -> (Output, Value) {
        let mut args = vec!["run", "suite.yaml", "--out", "out", "-q"];
        args.extend_from_slice(extra);
        let _ = std::fs::remove_dir_all(self.path("out"));
        let out = self.cmd(&args).output().unwrap();
        let results = std::fs::read(self.path("out/results.json"))
            .map(|b| serde_json::from_slice(&b).unwrap())
            .unwrap_or(Value::Null);
        (out, results)
    }
}

fn scenario<'a>(r: &'a Value, name: &str) -> &'a Value {
    r["scenarios"].as_array().unwrap().iter().find(|s| s["name"] == name).unwrap_or_else(|| panic!("no {name} in {r}"))
}

fn span(r: &Value, name: &str) -> (f64, f64) {
    let s = &scenario(r, name)["schedule"];
    (s["started_ms"].as_f64().unwrap(), s["finished_ms"].as_f64().unwrap())
}

fn overlap(a: (f64, f64), b: (f64, f64)) -> bool {
    a.0 < b.1 && b.0 < a.1
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

const SLEEP: &str = "sleep(\"400ms\");\ncheck(true, \"slept\");\n";

#[test]
fn diamond_dag_runs_in_a_valid_order() {
    let f = Fixture::new("name: d\nparallelism: 2\nscenarios: [d.yaml, b.yaml, c.yaml, a.yaml]\n");
    let ping = "let s = connect();\ncheck(s.ping().ok, \"ping\");\nsleep(\"100ms\");\n";
    f.scenario("a", "", ping);
    f.scenario("b", "depends_on: [a]\n", ping);
    f.scenario("c", "depends_on: [a]\n", ping);
    f.scenario("d", "depends_on: [b, c]\n", ping);
    let (out, r) = f.run(&[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let (a, b, c, d) = (span(&r, "a"), span(&r, "b"), span(&r, "c"), span(&r, "d"));
    assert!(b.0 >= a.1 && c.0 >= a.1, "b and c start after a ends: {a:?} {b:?} {c:?}");
    assert!(d.0 >= b.1 && d.0 >= c.1, "d starts after b and c end: {b:?} {c:?} {d:?}");
    assert!(overlap(b, c), "b and c run side by side on two workers: {b:?} {c:?}");
    let cp: Vec<&str> =
        r["suite"]["overhead"]["critical_path"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    assert_eq!(cp.len(), 3, "{cp:?}");
    assert_eq!((cp[0], cp[2]), ("a", "d"));
    assert_eq!(r["summary"]["total_tests"], 4);
    assert_eq!(r["summary"]["passed_tests"], 4);
    assert_eq!(r["summary"]["pass_rate"], 1.0);
}

#[test]
fn parallel_scenarios_overlap_and_sequential_do_not() {
    let f = Fixture::new("name: p\nparallelism: 2\nscenarios: [a.yaml, b.yaml]\n");
    f.scenario("a", "resources: {connections: 0}\n", SLEEP);
    f.scenario("b", "resources: {connections: 0}\n", SLEEP);
    let (out, r) = f.run(&[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(overlap(span(&r, "a"), span(&r, "b")), "{r}");
    let eff = r["suite"]["overhead"]["parallel_efficiency"].as_f64().unwrap();
    assert!(eff > 0.8 && eff <= 1.0, "parallel efficiency {eff}");

    let (out, r) = f.run(&["--parallel", "1"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(!overlap(span(&r, "a"), span(&r, "b")), "{r}");
}

#[test]
fn resource_conflicts_serialize() {
    // Budget 10: a and b (6 each) cannot run together; x is exclusive; c fits beside a.
    let f = Fixture::new("name: r\nparallelism: 4\nconnections: 10\nscenarios: [a.yaml, b.yaml, x.yaml, c.yaml]\n");
    f.scenario("a", "resources: {connections: 6}\n", SLEEP);
    f.scenario("b", "resources: {connections: 6}\n", SLEEP);
    f.scenario("x", "resources: {connections: 0, exclusive: true}\n", SLEEP);
    f.scenario("c", "resources: {connections: 0}\n", SLEEP);
    let (out, r) = f.run(&[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let (a, b, x, c) = (span(&r, "a"), span(&r, "b"), span(&r, "x"), span(&r, "c"));
    assert!(!overlap(a, b), "a and b exceed the budget together: {a:?} {b:?}");
    for (n, s) in [("a", a), ("b", b), ("c", c)] {
        assert!(!overlap(x, s), "the exclusive x overlaps {n}: {x:?} {s:?}");
    }
    assert!(overlap(a, c), "c fits beside a: {a:?} {c:?}");
}

#[test]
fn load_scenarios_run_alone_against_a_server_they_share() {
    let f = Fixture::new("name: l\nparallelism: 3\nscenarios: [a.yaml, b.yaml, c.yaml]\n");
    f.scenario("a", "tags: [load]\nresources: {connections: 0}\n", SLEEP);
    f.scenario("b", "tags: [load]\nresources: {connections: 0}\n", SLEEP);
    f.scenario("c", "resources: {connections: 0}\n", SLEEP);
    // One built-in server per scenario: they measure their own servers, side by side.
    let (out, r) = f.run(&[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(overlap(span(&r, "a"), span(&r, "b")), "{r}");
    // One server for all (as with --target): a load scenario has it to itself.
    f.write("suite.yaml", "name: l\nparallelism: 3\nshared_server: true\nscenarios: [a.yaml, b.yaml, c.yaml]\n");
    let (out, r) = f.run(&[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let (a, b, c) = (span(&r, "a"), span(&r, "b"), span(&r, "c"));
    assert!(!overlap(a, b) && !overlap(a, c) && !overlap(b, c), "{a:?} {b:?} {c:?}");
    assert_eq!(scenario(&r, "a")["schedule"]["exclusive"], true, "{r}");
}

#[test]
fn a_failing_dependency_skips_its_dependents_with_the_reason() {
    let f = Fixture::new("name: f\nscenarios: [a.yaml, b.yaml, c.yaml, e.yaml]\n");
    f.scenario("a", "resources: {connections: 0}\n", "check(1 == 2, \"one is two\");\n");
    f.scenario("b", "depends_on: [a]\nresources: {connections: 0}\n", SLEEP);
    f.scenario("c", "depends_on: [b]\nresources: {connections: 0}\n", SLEEP);
    f.scenario("e", "resources: {connections: 0}\n", "check(true, \"fine\");\n");
    let (out, r) = f.run(&[]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert_eq!(scenario(&r, "a")["status"], "failed");
    assert_eq!(scenario(&r, "b")["status"], "skipped");
    assert_eq!(scenario(&r, "b")["schedule"]["reason"], "dependency 'a' failed");
    assert_eq!(scenario(&r, "c")["status"], "skipped");
    assert!(scenario(&r, "c")["schedule"]["reason"].as_str().unwrap().contains("dependency 'b' skipped"));
    assert!(scenario(&r, "b")["schedule"]["started_ms"].is_null(), "a skipped scenario never started");
    assert_eq!(scenario(&r, "e")["status"], "passed");
    let s = &r["summary"];
    assert_eq!(
        (s["total_tests"].as_u64(), s["failed_tests"].as_u64(), s["skipped_tests"].as_u64()),
        (Some(4), Some(1), Some(2))
    );
    assert_eq!(s["total_assertions"], 2);
    assert_eq!(s["passed_assertions"], 1);
}

/// Processes whose parent is `pid`, from /proc.
fn children(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(p) = e.file_name().to_string_lossy().parse::<u32>() else { continue };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{p}/stat")) else { continue };
        let Some(rest) = stat.rsplit_once(')').map(|x| x.1) else { continue };
        let f: Vec<&str> = rest.split_whitespace().collect();
        if f.len() > 2 && f[0] != "Z" && f[1] == pid.to_string() {
            out.push(p);
        }
    }
    out
}

/// Alive and not a zombie.
fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => s.rsplit_once(')').and_then(|x| x.1.split_whitespace().next()) != Some("Z"),
        Err(_) => false,
    }
}

fn spawn(f: &Fixture, args: &[&str]) -> Child {
    f.cmd(args).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap()
}

/// The first child process of `pid`, once it exists and `ready` holds (within 10 s).
fn first_child(pid: u32, ready: impl Fn() -> bool, what: &str) -> u32 {
    let mut child = None;
    assert!(
        wait_until(Duration::from_secs(10), what, || {
            child = children(pid).first().copied();
            child.is_some() && ready()
        }),
        "{what} never started"
    );
    child.unwrap()
}

#[test]
fn a_timeout_cancels_the_scenario_and_leaves_no_child() {
    let f = Fixture::new("name: t\nscenarios: [slow.yaml, after.yaml]\n");
    // slow talks to a server it spawned over stdio and waits far past its timeout.
    f.scenario(
        "slow",
        "timeout: 1s\nresources: {connections: 0}\n",
        &format!(
            "let s = connect(\"stdio:{EXE} serve --stdio\");\nlet r = s.request(\"tools/call\", #{{name: \"sleep\", arguments: #{{duration: \"30s\"}}}}, \"60s\");\ncheck(r.ok, \"slept\");\n"
        ),
    );
    f.scenario("after", "resources: {connections: 0}\n", "sleep(\"3s\");\ncheck(true, \"after\");\n");
    let mut child = spawn(&f, &["run", "suite.yaml", "--out", "out", "-q", "--allow-spawn"]);
    let pid = child.id();
    let server = first_child(pid, || true, "the stdio server");
    // The timeout fires after 1 s; while `after` still runs, the server must be gone.
    assert!(
        wait_until(Duration::from_secs(3), "the timed-out server to exit", || !alive(server)),
        "the timed-out scenario's server {server} survived"
    );
    assert!(child.try_wait().unwrap().is_none(), "the coordinator is still running the next scenario");
    assert!(children(pid).is_empty(), "children left: {:?}", children(pid));
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(1));
    let r: Value = serde_json::from_slice(&std::fs::read(f.path("out/results.json")).unwrap()).unwrap();
    assert_eq!(scenario(&r, "slow")["status"], "timeout");
    assert_eq!(scenario(&r, "after")["status"], "passed");
    let took = span(&r, "slow");
    assert!(took.1 - took.0 < 3000.0, "the timeout stopped it promptly: {took:?}");
}

#[test]
fn killing_the_coordinator_leaves_no_child() {
    let port = common::free_port();
    let f = Fixture::new(&format!(
        "name: k\ntarget: tcp://127.0.0.1:{port}\nserver:\n  command: [\"{EXE}\", serve, --listen, \"tcp://127.0.0.1:{port}\"]\nscenarios: [long.yaml]\n"
    ));
    f.scenario("long", "", "let s = connect();\ncheck(s.ping().ok, \"ping\");\nsleep(\"30s\");\n");
    let mut child = spawn(&f, &["run", "suite.yaml", "--out", "out", "-q"]);
    let pid = child.id();
    let server = first_child(pid, || std::net::TcpStream::connect(("127.0.0.1", port)).is_ok(), "the managed server");
    // SAFETY: signals only the coordinator this test started.
    unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    let _ = child.wait();
    assert!(
        wait_until(Duration::from_secs(5), "the managed server to exit", || !alive(server)),
        "the managed server {server} outlived its coordinator"
    );
}

#[test]
fn ctrl_c_cancels_the_run_and_writes_a_partial_report() {
    let f = Fixture::new("name: c\nscenarios: [long.yaml, next.yaml]\n");
    f.scenario("long", "resources: {connections: 0}\n", "sleep(\"30s\");\n");
    f.scenario("next", "depends_on: [long]\nresources: {connections: 0}\n", SLEEP);
    let mut child = spawn(&f, &["run", "suite.yaml", "--out", "out", "-q"]);
    // Kept fixed: the coordinator shows nothing outside (no child, no output with -q) once
    // `long` is inside its 30 s sleep, so this gives it time to get there. Too short on a
    // loaded machine only means the interrupt lands earlier; the asserts below still hold.
    std::thread::sleep(Duration::from_millis(1500));
    // SAFETY: signals only the coordinator this test started.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let t = Instant::now();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130));
    assert!(t.elapsed() < Duration::from_secs(10));
    let r: Value = serde_json::from_slice(&std::fs::read(f.path("out/results.json")).unwrap()).unwrap();
    assert_eq!(r["status"], "cancelled");
    assert_eq!(scenario(&r, "long")["status"], "cancelled");
    assert!(scenario(&r, "next")["status"] == "cancelled" || scenario(&r, "next")["status"] == "skipped", "{r}");
}

/// Runs `check` and `run` on a broken suite: both exit 2 before running anything.
fn invalid(f: &Fixture, extra: &[&str]) -> String {
    let mut args = vec!["check", "suite.yaml"];
    args.extend_from_slice(extra);
    let out = f.cmd(&args).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "check: {}", stderr(&out));
    let mut args = vec!["run", "suite.yaml", "--out", "out", "-q"];
    args.extend_from_slice(extra);
    let run = f.cmd(&args).output().unwrap();
    assert_eq!(run.status.code(), Some(2), "run: {}", stderr(&run));
    assert!(!f.path("out").exists(), "nothing ran");
    let e = stderr(&out);
    assert!(!e.contains("panicked"), "{e}");
    e
}

fn two(extra_a: &str, extra_b: &str) -> Fixture {
    let f = Fixture::new("name: bad\nscenarios: [a.yaml, b.yaml]\n");
    f.scenario("a", extra_a, "check(true, \"a\");\n");
    f.scenario("b", extra_b, "check(true, \"b\");\n");
    f
}

#[test]
fn cycles_are_spelt_out() {
    let f = Fixture::new("name: bad\nscenarios: [a.yaml, b.yaml, c.yaml]\n");
    f.scenario("a", "depends_on: [b]\n", "");
    f.scenario("b", "depends_on: [c]\n", "");
    f.scenario("c", "depends_on: [a]\n", "");
    let e = invalid(&f, &[]);
    assert!(e.contains("dependency cycle: a -> b -> c -> a"), "{e}");
    assert!(e.contains("a.yaml:3:1"), "{e}");
}

#[test]
fn unknown_dependencies_and_duplicate_names_are_refused() {
    let e = invalid(&two("", "depends_on:\n  - aa\n"), &[]);
    assert!(e.contains("b.yaml:4:5: unknown dependency 'aa'") && e.contains("did you mean a?"), "{e}");
    let f = two("", "");
    f.write("b.yaml", "# the same name twice\nname: a\nscript: b.rhai\n");
    let e = invalid(&f, &[]);
    assert!(e.contains("b.yaml:2:1: duplicate scenario name 'a'"), "{e}");
}

#[test]
fn unknown_keys_get_a_suggestion_and_a_place() {
    let e = invalid(&two("timout: 5s\n", ""), &[]);
    assert!(e.contains("a.yaml:3:1: unknown field `timout`") && e.contains("did you mean `timeout`?"), "{e}");
    let f = two("", "");
    f.write("suite.yaml", "name: bad\nparalelism: 2\nscenarios: [a.yaml, b.yaml]\n");
    let e = invalid(&f, &[]);
    assert!(e.contains("suite.yaml:2:1") && e.contains("did you mean `parallelism`?"), "{e}");
}

#[test]
fn yaml_syntax_errors_and_bad_durations_have_a_place() {
    let f = two("", "");
    f.write("suite.yaml", "name: bad\nscenarios: [a.yaml, b.yaml\n");
    let e = invalid(&f, &[]);
    assert!(
        e.contains("suite.yaml:") && e.split("suite.yaml:").nth(1).unwrap().chars().next().unwrap().is_ascii_digit(),
        "{e}"
    );
    let e = invalid(&two("timeout: 30\n", ""), &[]);
    assert!(e.contains("a.yaml:3:10") && e.contains("needs a unit"), "{e}");
    let e = invalid(&two("timeout: 5 minutes\n", ""), &[]);
    assert!(e.contains("a.yaml:3") && e.contains("invalid duration"), "{e}");
}

#[test]
fn unknown_profile_only_and_missing_script_are_refused() {
    let e = invalid(&two("", ""), &["--profile", "fulll"]);
    assert!(e.contains("--profile fulll") && e.contains("did you mean full?"), "{e}");
    let e = invalid(&two("", ""), &["--only", "nothing"]);
    assert!(e.contains("--only nothing: names no scenario"), "{e}");
    let f = two("", "");
    f.write("b.yaml", "name: b\nscript: missing.rhai\n");
    let e = invalid(&f, &[]);
    assert!(e.contains("b.yaml:2:1: script missing.rhai not found"), "{e}");
    let e = invalid(&two("params: {rounds: 3}\n", ""), &[]);
    assert!(e.contains("reads no parameter 'rounds'"), "{e}");
}

#[test]
fn only_selects_scenarios_with_their_dependencies_and_profiles_set_params() {
    let f = Fixture::new("name: o\nprofiles:\n  heavy:\n    params: {n: 7}\nscenarios: [a.yaml, b.yaml, c.yaml]\n");
    f.scenario("a", "resources: {connections: 0}\n", "check(true, \"a\");\n");
    f.scenario(
        "b",
        "depends_on: [a]\nresources: {connections: 0}\nparams: {n: 1}\nprofiles:\n  full: {n: 2}\n",
        "let n = param(\"n\", 0);\nmetric(\"n\", n);\n",
    );
    f.scenario("c", "resources: {connections: 0}\n", "check(true, \"c\");\n");
    let list = f.cmd(&["list", "suite.yaml", "--only", "b"]).output().unwrap();
    let text = String::from_utf8_lossy(&list.stdout);
    assert!(text.contains("level 0:") && text.contains("  a ") && text.contains("after: a"), "{text}");
    assert!(!text.contains("  c "), "{text}");
    let n = |r: &Value| scenario(r, "b")["metrics"][0]["value"].as_f64().unwrap();
    let (out, r) = f.run(&["--only", "b"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(r["scenarios"].as_array().unwrap().len(), 2, "a and b only");
    assert_eq!(n(&r), 1.0);
    let (_, r) = f.run(&["--only", "b", "--profile", "full"]);
    assert_eq!(n(&r), 2.0);
    let (_, r) = f.run(&["--only", "b", "--profile", "heavy"]);
    assert_eq!(n(&r), 7.0);
    let (_, r) = f.run(&["--only", "b", "--profile", "full", "--set", "b.n=9"]);
    assert_eq!(n(&r), 9.0);
}

#[test]
fn the_shipped_suite_validates() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = Command::new(EXE).args(["check", "scripts/suite.yaml"]).current_dir(root).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let out = Command::new(EXE)
        .args(["check", "scripts/suite.yaml", "--profile", "full"])
        .current_dir(root)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

#[test]
fn each_scenario_gets_its_own_builtin_server_unless_shared() {
    let f = Fixture::new("name: i\nparallelism: 2\nscenarios: [a.yaml, b.yaml]\n");
    let script = "let s = connect();\nlog(target());\ncheck(s.ping().ok, \"ping\");\nsleep(\"300ms\");\n";
    f.scenario("a", "", script);
    f.scenario("b", "", script);
    let target = |r: &Value, n: &str| scenario(r, n)["logs"][0]["message"].as_str().unwrap().to_string();
    let (out, r) = f.run(&[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(overlap(span(&r, "a"), span(&r, "b")));
    assert_ne!(target(&r, "a"), target(&r, "b"), "two scenarios, two servers");
    f.write("suite.yaml", "name: i\nparallelism: 2\nshared_server: true\nscenarios: [a.yaml, b.yaml]\n");
    let (out, r) = f.run(&[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(target(&r, "a"), target(&r, "b"), "shared_server: one server");
}

#[test]
fn a_chaos_scenarios_server_process_ends_with_the_scenario() {
    let f = Fixture::new("name: c\nscenarios: [killer.yaml, after.yaml]\n");
    // The script uses chaos::, so its built-in server is a child process it may kill.
    f.scenario(
        "killer",
        "",
        "let pids = chaos::server().pids;\ncheck(pids.len() == 1, \"one managed server process\");\nsleep(\"1s\");\nchaos::kill();\nchaos::restart();\ncheck(connect().ping().ok, \"answers after the restart\");\n",
    );
    f.scenario("after", "resources: {connections: 0}\n", "sleep(\"2s\");\n");
    let mut child = spawn(&f, &["run", "suite.yaml", "--out", "out", "-q"]);
    let pid = child.id();
    let mut first = None;
    assert!(
        wait_until(Duration::from_secs(10), "the chaos scenario's server", || {
            first = children(pid).first().copied();
            first.is_some()
        }),
        "the chaos scenario's server never started"
    );
    // killer kills and restarts it (a new PID), then ends: during `after` nothing is left.
    assert!(
        wait_until(Duration::from_secs(8), "the first server and every child to exit", || !alive(first.unwrap())
            && children(pid).is_empty()),
        "left: {:?}",
        children(pid)
    );
    assert!(child.try_wait().unwrap().is_none(), "`after` is still running");
    assert_eq!(child.wait().unwrap().code(), Some(0));
    let r: Value = serde_json::from_slice(&std::fs::read(f.path("out/results.json")).unwrap()).unwrap();
    assert_eq!(scenario(&r, "killer")["status"], "passed", "{r}");
}

/// "stage: check: detail" of every failed check under `node`.
fn failed_checks(node: &Value) -> Vec<String> {
    let mut out: Vec<String> = node["checks"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|c| c["failed"].as_u64() > Some(0))
        .map(|c| format!("{}: {}: {}", node["name"], c["name"], c["failures"][0]["detail"]))
        .collect();
    for s in node["stages"].as_array().into_iter().flatten() {
        out.extend(failed_checks(s));
    }
    out
}

#[test]
fn the_shipped_suite_passes_against_the_builtin_server() {
    // Latency limits are loosened: the test shares the machine with every other test.
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out_dir = tempfile::tempdir().unwrap();
    let out = Command::new(EXE)
        .args([
            "run",
            "scripts/suite.yaml",
            "-q",
            "--no-history",
            "--set",
            "min_achieved=0.8",
            "--set",
            "max_cv=100",
            "--set",
            "max_p99_over_p50=1000",
            "--out",
        ])
        .arg(out_dir.path())
        .current_dir(root)
        .output()
        .unwrap();
    let results = std::fs::read(out_dir.path().join("results.json"));
    let r: Value =
        serde_json::from_slice(&results.unwrap_or_else(|e| panic!("no results.json ({e}): {}", stderr(&out)))).unwrap();
    let failed: Vec<String> = r["scenarios"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["status"] != "passed")
        .map(|s| format!("{} {}: {} {:?}", s["name"], s["status"], s["error"], failed_checks(s)))
        .collect();
    assert_eq!(out.status.code(), Some(0), "{failed:?}\n{}", stderr(&out));
    assert_eq!(r["summary"]["total_tests"], 8);
    assert_eq!(r["summary"]["pass_rate"], 1.0);
    assert!(r["suite"]["overhead"]["critical_path"].as_array().unwrap().len() >= 3);
    assert!(r["summary"]["total_assertions"].as_u64().unwrap() > 1000, "{}", r["summary"]);
}

#[test]
fn check_validates_every_profiles_values_and_run_only_its_own() {
    let f = Fixture::new("name: p\nscenarios: [a.yaml]\n");
    f.scenario(
        "a",
        "resources: {connections: 0}\nprofiles:\n  full: {n: lots}\n",
        "let n = param(\"n\", 1);\ncheck(n > 0, \"n\");\n",
    );
    let out = f.cmd(&["check", "suite.yaml"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let e = stderr(&out);
    assert!(e.contains("profile full") && e.contains("expects an integer"), "{e}");
    let (out, _) = f.run(&[]);
    assert_eq!(out.status.code(), Some(0), "the quick profile is fine: {}", stderr(&out));
    let (out, _) = f.run(&["--profile", "full"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
}

#[test]
fn a_suite_server_that_does_not_start_fails_the_scenarios_with_the_reason() {
    let f = Fixture::new(
        "name: m\ntarget: tcp://127.0.0.1:1\nserver:\n  command: [/bin/false]\n  ready: {timeout: 2s}\nscenarios: [a.yaml]\n",
    );
    f.scenario("a", "", "check(true, \"never runs\");\n");
    let (out, r) = f.run(&[]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("the suite's server did not start"), "{}", stderr(&out));
    assert_eq!(scenario(&r, "a")["status"], "failed");
    assert!(scenario(&r, "a")["schedule"]["reason"].as_str().unwrap().contains("/bin/false"), "{r}");
}

#[test]
fn a_suite_server_with_restart_on_exit_comes_back_between_scenarios() {
    // `a` kills the suite's server; `b` runs after it and needs the server. With
    // `restart: on-exit` mcpscript starts it again before `b`; without, `b` finds it gone.
    for restart in [true, false] {
        let port = common::free_port();
        let policy = if restart { "  restart: on-exit\n" } else { "" };
        let f = Fixture::new(&format!(
            "name: r\ntarget: tcp://127.0.0.1:{port}\nparallelism: 1\nserver:\n  command: [{EXE}, serve, --listen, \
             'tcp://127.0.0.1:{port}']\n{policy}scenarios: [a.yaml, b.yaml]\n"
        ));
        f.scenario("a", "", "let pids = chaos::kill();\ncheck(pids.len() == 1, \"killed the suite's server\");\n");
        f.scenario(
            "b",
            "depends_on: [a]\n",
            "let s = connect();\ncheck(s.ping().ok, \"the server answers\");\ns.close();\n",
        );
        let (out, r) = f.run(&[]);
        assert_eq!(scenario(&r, "a")["status"], "passed", "{r}");
        if restart {
            assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
            assert_eq!(scenario(&r, "b")["status"], "passed", "{r}");
        } else {
            assert_eq!(out.status.code(), Some(1), "without restart the server stays down: {}", stderr(&out));
            assert_ne!(scenario(&r, "b")["status"], "passed", "{r}");
        }
    }
}

/// A number printed with more than three decimals (`72718.41440950964`), if any.
fn long_decimal(text: &str) -> Option<String> {
    let b = text.as_bytes();
    (1..b.len()).find_map(|i| {
        let digits = b[i + 1..].iter().take_while(|c| c.is_ascii_digit()).count();
        (b[i] == b'.' && b[i - 1].is_ascii_digit() && digits >= 4).then(|| {
            let line = text[..i].rfind('\n').map_or(0, |n| n + 1);
            text[line..].lines().next().unwrap_or_default().to_string()
        })
    })
}

#[test]
fn parallel_scenarios_log_with_their_names_on_one_clock_with_live_status_lines() {
    let f = Fixture::new("name: live\nparallelism: 2\nscenarios: [a.yaml, b.yaml]\n");
    f.scenario(
        "a",
        "resources: {connections: 0}\n",
        "for i in 0..6 {\n    log(`a line ${i}: ${human(72718.41440950964, \"req/s\")}, ${human_ms(0.278)}, ${human(218171)}`);\n    \
         sleep(\"250ms\");\n}\ncheck(true, \"a\");\n",
    );
    f.scenario(
        "b",
        "resources: {connections: 4}\ntimeout: 30s\n",
        "log(\"b line 0\");\nlet r = load::closed(#{name: \"busy\", sessions: 2, duration: \"3500ms\", think: \"5ms\"});\n\
         log(`b line 1: ${human(r.throughput, \"req/s\")}, p99 ${human_ms(r.latency.p99)}`);\ncheck(r.sent > 0, \"b sent\");\n",
    );
    let out = f.cmd(&["run", "suite.yaml", "--out", "out"]).env("MCPSCRIPT_PROGRESS_INTERVAL", "1s").output().unwrap();
    let (so, se) = (String::from_utf8_lossy(&out.stdout).into_owned(), stderr(&out));
    assert_eq!(out.status.code(), Some(0), "{so}\n{se}");
    let mut last = 0.0;
    let mut status_lines = Vec::new();
    for line in se.lines() {
        let (time, rest) = line
            .strip_prefix('[')
            .and_then(|l| l.split_once("s] "))
            .unwrap_or_else(|| panic!("a stderr line without its time: {line:?}\n{se}"));
        let t: f64 = time.trim().parse().unwrap_or_else(|_| panic!("bad time in {line:?}"));
        assert!(t >= last, "the clock went back from {last} to {t}:\n{se}");
        last = t;
        if let Some(running) = rest.strip_prefix("running: ") {
            status_lines.push(running.to_string());
            continue;
        }
        let (name, message) =
            rest.split_once(" | ").unwrap_or_else(|| panic!("a log line without its scenario: {line:?}"));
        assert!(name == "a" || name == "b", "{line:?}");
        if message.starts_with("a line") || message.starts_with("b line") {
            assert!(message.starts_with(&format!("{name} line")), "{message:?} logged under {name}");
        }
    }
    assert!(se.contains("a | a line 5: 72.7K req/s, 278 us, 218,171"), "{se}");
    assert!(se.contains("b | load busy (closed): "), "{se}");
    assert!(se.contains("b | b line 1: "), "{se}");
    // A status line names the running scenarios and shows the load phase's live figures.
    let live_sent = status_lines.iter().any(|l| {
        l.split("load busy: ").nth(1).and_then(|s| s.split(' ').next()).is_some_and(|n| n != "0" && n != "opening")
    });
    assert!(live_sent, "no status line with the phase's requests: {status_lines:?}\n{se}");
    assert!(status_lines.iter().any(|l| l.contains("b (") && l.contains(" of 30 s, load busy: ")), "{status_lines:?}");
    // Start and end lines are on the same clock, with durations rounded.
    assert!(so.lines().any(|l| l.starts_with('[') && l.contains("] start    a")), "{so}");
    assert!(so.lines().any(|l| l.contains("] passed   b (") && l.contains(" s, 1 of 1 checks passed)")), "{so}");
    for text in [&so, &se] {
        assert_eq!(long_decimal(text), None, "a number with more than 3 decimals:\n{text}");
    }
}

#[test]
fn quiet_prints_nothing_for_a_passing_run() {
    let f = Fixture::new("name: q\nparallelism: 2\nscenarios: [a.yaml, b.yaml]\n");
    let script = "log(\"a line\");\nprint(\"printed\");\nsleep(\"1500ms\");\ncheck(true, \"ok\");\n";
    f.scenario("a", "resources: {connections: 0}\n", script);
    f.scenario("b", "resources: {connections: 0}\n", script);
    let out = f
        .cmd(&["run", "suite.yaml", "--out", "out", "--quiet"])
        .env("MCPSCRIPT_PROGRESS_INTERVAL", "500ms")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "", "stdout with --quiet");
    assert_eq!(stderr(&out), "", "stderr with --quiet");
}

#[test]
fn thousands_of_unread_params_are_one_located_list_reported_once() {
    let f = Fixture::new("name: t\nscenarios: [s.yaml]\n");
    let params: String = (0..10_000).map(|i| format!("  p{i}: {i}\n")).collect();
    f.scenario(
        "s",
        &format!("params:\n  rounds: 3\n{params}"),
        "let n = param(\"rounds\", 1);\ncheck(n > 0, \"n\");\n",
    );
    let t = Instant::now();
    let out = f.cmd(&["check", "suite.yaml"]).output().unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(t.elapsed() < Duration::from_secs(10), "took {:?}", t.elapsed());
    assert_eq!(err.matches("reads no parameter").count(), 20, "{err}");
    assert!(err.contains("s.yaml:6:3: s.rhai reads no parameter 'p1'"), "{err}");
    assert!(err.contains("and 9980 more parameters that s.rhai does not read"), "{err}");
    assert!(!err.contains("--set"), "reported once, at the manifest, not again as --set: {err}");
}

#[test]
fn a_yaml_bomb_is_refused_at_once() {
    let f = Fixture::new(&format!("name: t\nscenarios: {}{}\n", "[".repeat(200_000), "]".repeat(200_000)));
    let t = Instant::now();
    let out = f.cmd(&["check", "suite.yaml"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("suite.yaml:2:"), "{}", stderr(&out));
    assert!(t.elapsed() < Duration::from_secs(5), "took {:?}", t.elapsed());
}
