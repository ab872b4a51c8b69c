//! The scripting host through the library API: real scripts, compiled from files in a temp
//! folder, run on script threads against the real built-in server over tcp.

use mcpscript::client::Target;
use mcpscript::script::results::{Assertions, Better, ScenarioResult, ScriptErrorKind, Status};
use mcpscript::script::{runner, CompileError, Limits, Params, RunOptions, Script, ScriptEnv, StopReason, StopSignal};
use mcpscript::server::{self, RunningServer, ServerConfig};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

struct Harness {
    rt: tokio::runtime::Runtime,
    server: Option<RunningServer>,
    target: Target,
    dir: PathBuf,
}

static NEXT: AtomicUsize = AtomicUsize::new(0);

fn harness() -> Harness {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let server = rt.block_on(server::start(ServerConfig::listening(&["tcp://127.0.0.1:0"]).unwrap())).unwrap();
    let target = server.url("tcp").unwrap().parse().unwrap();
    let dir = std::env::temp_dir().join(format!(
        "mcpscript-script-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    Harness { rt, server: Some(server), target, dir }
}

impl Drop for Harness {
    fn drop(&mut self) {
        if let Some(s) = self.server.take() {
            self.rt.block_on(s.shutdown());
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Harness {
    fn write(&self, name: &str, src: &str) -> PathBuf {
        let path = self.dir.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, src).unwrap();
        path
    }

    fn compile_with(&self, src: &str, env: &ScriptEnv) -> Result<Script, CompileError> {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        Script::load(&self.write(&format!("s{n}.rhai"), src), env)
    }

    fn compile(&self, src: &str) -> Result<Script, CompileError> {
        self.compile_with(src, &ScriptEnv::default())
    }

    fn opts(&self) -> RunOptions {
        RunOptions { seed: 7, ..RunOptions::new(self.target.clone()) }
    }

    fn run_script(&self, script: Script, opts: RunOptions) -> ScenarioResult {
        runner::spawn(Arc::new(script), opts, self.rt.handle().clone()).unwrap().join().unwrap()
    }

    fn run_with(&self, src: &str, edit: impl FnOnce(&mut RunOptions)) -> ScenarioResult {
        let script = self.compile(src).unwrap_or_else(|e| panic!("does not compile:\n{e}"));
        let mut opts = self.opts();
        edit(&mut opts);
        self.run_script(script, opts)
    }

    fn run(&self, src: &str) -> ScenarioResult {
        self.run_with(src, |_| {})
    }
}

/// Fails the test with the script's own error report when the script errored.
fn no_error(r: &ScenarioResult) {
    if let Some(e) = &r.error {
        panic!("script error: {e:?}");
    }
}

fn all_passed(r: &ScenarioResult) {
    no_error(r);
    let failed: Vec<_> = r.root.checks.iter().filter(|c| c.failed > 0).collect();
    assert_eq!(r.root.assertions.failed, 0, "failed checks: {failed:#?}");
    assert_eq!(r.status(), Status::Passed);
}

#[test]
fn checks_are_counted_and_aggregated() {
    let h = harness();
    let r = h.run(
        r#"
        let n = 0;
        for i in 0..10 {
            if check(i % 3 != 0, "not a multiple of three", `i=${i}`) { n += 1; }
        }
        check(n == 6, "check returns its condition");
        let a = assertions();
        check(a.passed == 7 && a.failed == 4, "assertions() counts so far", `${a}`);
        "#,
    );
    no_error(&r);
    assert_eq!(r.root.assertions, Assertions { passed: 8, failed: 4 });
    let c = &r.root.checks[0];
    assert_eq!((c.name.as_str(), c.passed, c.failed), ("not a multiple of three", 6, 4));
    let details: Vec<_> = c.failures.iter().map(|f| f.detail.clone().unwrap()).collect();
    assert_eq!(details, ["i=0", "i=3", "i=6", "i=9"]);
    assert_eq!(c.failures[0].line, Some(4));
    assert_eq!(r.status(), Status::Failed);
}

#[test]
fn requests_return_response_maps() {
    let h = harness();
    let r = h.run(
        r#"
        let s = connect();
        let r = s.ping();
        check(r.ok && r.error == () && r.latency_us >= 0 && type_of(r.latency_ms) == "f64" && r.method == "ping", "ping map", `${r}`);
        let e = s.request("no/such/method");
        check(!e.ok && e.error.kind == "rpc" && e.error.code == -32601, "unknown method is -32601", `${e.error}`);
        let t = s.tool("add", #{a: 2, b: 3.5});
        check(t.result.structuredContent.sum == 5.5, "add", `${t}`);
        let p = s.get_prompt("greeting", #{name: "Ada"});
        check(p.ok && p.result.messages[0].content.text.contains("Ada"), "prompt", `${p}`);
        let rr = s.read_resource("mcpscript://payload/10");
        check(rr.result.contents[0].text.len() == 10, "resource", `${rr}`);
        check(s.resources_list().ok && s.prompts_list().ok && s.tools_list().ok, "lists");
        check(s.request("tools/call", #{name: "echo", arguments: #{message: "x"}}).result.content[0].text == "Echo: x", "raw request with params");
        s.notify("notifications/progress", #{progressToken: 1, progress: 1});
        let slow = s.request("tools/call", #{name: "sleep", arguments: #{ms: 500}}, "50ms");
        check(!slow.ok && slow.error.kind == "timeout", "a deadline gives a timeout", `${slow.error}`);
        check(s.ping().ok, "the session survives the timeout");
        check(s.server.name == "mcpscript" && s.is_open && s.target == target(), "session properties", `${s.server}`);
        s.close();
        s.close();
        check(!s.is_open, "closed");
        let caught = "";
        try { s.ping(); } catch (err) { caught = `${err}`; }
        check(caught.contains("closed"), "a closed session raises", caught);
        let failed_connect = "";
        try { connect("tcp://127.0.0.1:1"); } catch (err) { failed_connect = `${err}`; }
        check(failed_connect.contains("127.0.0.1:1"), "connect errors name the target", failed_connect);
        let bad = "";
        try { connect().tool("echo", 5); } catch (err) { bad = `${err}`; }
        check(bad.contains("arguments must be a map"), "bad arguments raise", bad);
        "#,
    );
    all_passed(&r);
    assert_eq!(r.root.assertions.passed, 14);
}

#[test]
fn thresholds_are_parsed_and_judged() {
    let h = harness();
    let r = h.run(
        r#"
        import "stats" as stats;
        let xs = [];
        for i in 1..=100 { xs.push(i); }
        let s = stats::summary(xs);
        check(threshold(s, "p99 < 100ms"), "p99 of 1..100 is under 100ms");
        check(!threshold(s, "p(50) < 10ms"), "the median is not under 10ms");
        let load = #{latency: #{p99: 900, p50: 100, unit: "us"}, sent: 1000, ok: 999, rate: 2000};
        check(threshold(load, ["p99 < 1ms", "p50 <= 100us", "error_rate <= 0.1%", "rate > 1000", "count == 1000"]), "a load-shaped map");
        let msg = "";
        let expr = "p99 <<" + " 5ms";
        try { threshold(s, expr); } catch (e) { msg = `${e}`; }
        check(msg.contains("not an operator"), "malformed expressions are rejected at run time", msg);
        let missing = "";
        try { threshold(#{p50: 1}, "p99 < 5ms"); } catch (e) { missing = `${e}`; }
        check(missing.contains("no p99"), "a missing metric is named", missing);
        "#,
    );
    no_error(&r);
    // Thresholds are assertions too: 1 + 1 (failed) + 5, plus 5 checks.
    assert_eq!(r.root.assertions, Assertions { passed: 11, failed: 1 });
    let failed = r.root.checks.iter().find(|c| c.failed > 0).unwrap();
    assert_eq!(failed.name, "threshold p(50) < 10ms");
    assert_eq!(failed.failures[0].detail.as_deref(), Some("p(50) = 50.5ms (limit < 10ms)"));

    let e = h
        .compile("threshold(#{p99: 1}, \"p99 < 5 parsecs\");")
        .err()
        .expect("a literal malformed threshold does not compile");
    let text = e.to_string();
    assert!(text.contains(":1:22: invalid threshold \"p99 < 5 parsecs\": unknown unit 'parsecs'"), "{text}");
    // A latency limit needs its unit, as every duration does.
    let e = h.compile("threshold(#{p99: 1}, \"p99 < 50\");").err().expect("a bare latency limit does not compile");
    let text = e.to_string();
    assert!(text.contains(r#"invalid threshold "p99 < 50": "50" needs a unit, e.g. "50ms""#), "{text}");
}

#[test]
fn stages_nest_results_and_timing() {
    let h = harness();
    let r = h.run(
        r#"
        let v = stage("outer", || {
            check(true, "outer check");
            stage("inner", || { check(false, "inner check"); sleep("20ms"); });
            stage("second", || { metric("m1", 42, #{unit: "x", better: "higher"}); 7 })
        });
        check(v == 7, "a stage returns its closure's value");
        metric("top", 1.5);
        "#,
    );
    no_error(&r);
    let outer = &r.root.stages[0];
    assert_eq!(
        (outer.name.as_str(), outer.status, outer.assertions),
        ("outer", Status::Failed, Assertions { passed: 1, failed: 1 })
    );
    let inner = &outer.stages[0];
    assert_eq!((inner.name.as_str(), inner.status), ("inner", Status::Failed));
    assert!(inner.duration_ms >= 20.0, "{}", inner.duration_ms);
    assert!(inner.started_ms >= outer.started_ms);
    let second = &outer.stages[1];
    assert_eq!(second.status, Status::Passed);
    assert_eq!(second.metrics[0].stage, "outer/second");
    assert_eq!(second.metrics[0].better, Better::Higher);
    assert_eq!(r.root.assertions, Assertions { passed: 2, failed: 1 });
    let names: Vec<_> = r.all_metrics().iter().map(|m| m.name.clone()).collect();
    assert_eq!(names, ["top", "m1"]);
}

#[test]
fn errors_inside_stages_close_them_and_carry_the_stack() {
    let h = harness();
    let r = h.run(
        "fn inner(x) {\n    let m = #{};\n    m.missing.field + x\n}\nfn outer(y) { inner(y) }\nstage(\"warm\", || {\n    check(true, \"fine\");\n    outer(2);\n});\ncheck(true, \"never reached\");\n",
    );
    let e = r.error.as_ref().expect("an error");
    assert_eq!(e.kind, ScriptErrorKind::Runtime);
    assert_eq!((e.line, e.column), (Some(3), Some(15)));
    let frames: Vec<_> = e.stack.iter().map(|f| (f.function.as_str(), f.line)).collect();
    assert_eq!(frames, [("fn 'inner'", Some(5)), ("fn 'outer'", Some(8)), ("stage 'warm'", Some(6))]);
    let warm = &r.root.stages[0];
    assert_eq!(warm.status, Status::Failed);
    assert!(warm.error.as_deref().unwrap().contains("field"), "{:?}", warm.error);
    assert_eq!(r.root.assertions, Assertions { passed: 1, failed: 0 });
    assert_eq!(r.status(), Status::Failed);
}

#[test]
fn unknown_functions_suggest_the_nearest_name() {
    let h = harness();
    let e = h.compile("let s = conect();\nthreshhold(#{}, \"p99 < 1ms\");\n").err().unwrap().to_string();
    assert!(e.contains(":1:9: unknown function 'conect'") && e.contains("did you mean connect?"), "{e}");
    assert!(e.contains(":2:1: unknown function 'threshhold'") && e.contains("did you mean threshold?"), "{e}");
    let e = h.compile("import \"stats\" as stats;\nstats::meen([1]);").err().unwrap().to_string();
    assert!(e.contains("module 'stats' has no function 'meen'") && e.contains("did you mean stats::mean?"), "{e}");
    // Method calls and wrong argument types are only known at run time.
    let r = h.run("let s = connect();\ns.pingg();");
    let err = r.error.unwrap();
    assert!(err.message.contains("function not found: pingg"), "{err:?}");
    assert_eq!(err.hint.as_deref(), Some("did you mean ping?"));
    // A literal of the wrong type is found at compile time; a computed one when it runs.
    let e = h.compile("check(1, \"x\");").err().expect("wrong literal types do not compile").to_string();
    assert!(e.contains(":1:1: wrong argument types: check(int, string)"), "{e}");
    let r = h.run("let n = 1;\ncheck(n, \"x\");");
    let err = r.error.unwrap();
    assert_eq!(err.kind, ScriptErrorKind::Param, "{err:?}");
    assert_eq!(err.message, "wrong argument types: check(int, string)");
    let hint = err.hint.unwrap();
    assert!(
        hint.starts_with("check exists with other parameters: check(cond: bool, message: string) -> bool"),
        "{hint}"
    );
}

#[test]
fn limits_stop_runaway_scripts() {
    let h = harness();
    let env = ScriptEnv { limits: Limits { max_operations: 100_000, ..Limits::default() }, ..ScriptEnv::default() };
    let t0 = Instant::now();
    let r = h.run_script(h.compile_with("let x = 0;\nloop { x += 1; }", &env).unwrap(), h.opts());
    let e = r.error.unwrap();
    assert_eq!(e.kind, ScriptErrorKind::Limit);
    assert!(e.message.contains("limit of 100000 operations") && e.message.contains("runaway"), "{}", e.message);
    assert_eq!(e.line, Some(2));
    assert!(t0.elapsed() < Duration::from_secs(10));
    assert_eq!(r.root.status, Status::Failed);

    let r = h.run("fn f(n) { f(n + 1) }\nf(0);");
    let e = r.error.unwrap();
    assert_eq!(e.kind, ScriptErrorKind::Limit);
    assert!(e.message.contains("nested too deeply"), "{}", e.message);

    let r = h.run("let s = \"x\";\nloop { s += s; }");
    let e = r.error.unwrap();
    assert_eq!(e.kind, ScriptErrorKind::Limit);
    assert!(e.message.contains("size limit"), "{}", e.message);
}

#[test]
fn timeout_wakes_a_script_blocked_on_a_request() {
    let h = harness();
    let t0 = Instant::now();
    let r = h.run_with(
        "let s = connect();\nstage(\"slow\", || {\n    s.tool(\"sleep\", #{duration: \"20s\"});\n});\ncheck(true, \"never\");",
        |o| o.timeout = Some(Duration::from_millis(1000)),
    );
    assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());
    assert_eq!(r.status(), Status::Timeout);
    let e = r.error.unwrap();
    // Rhai reports a stop at the call that was running at the top level: the stage.
    assert_eq!((e.kind, e.line), (ScriptErrorKind::Timeout, Some(2)));
    assert_eq!(r.root.stages[0].status, Status::Timeout);
    assert_eq!(r.root.assertions.total(), 0);
}

#[test]
fn timeout_stops_a_busy_loop_and_try_cannot_swallow_it() {
    let h = harness();
    let env = ScriptEnv { limits: Limits { max_operations: 0, ..Limits::default() }, ..ScriptEnv::default() };
    let script = h.compile_with("loop { try { let x = 1; } catch { } }", &env).unwrap();
    let t0 = Instant::now();
    let r = h.run_script(script, RunOptions { timeout: Some(Duration::from_millis(200)), ..h.opts() });
    assert!(t0.elapsed() < Duration::from_secs(5));
    assert_eq!(r.status(), Status::Timeout);
}

#[test]
fn an_interrupt_cancels_a_sleeping_script() {
    let h = harness();
    let stop = StopSignal::new();
    let s2 = stop.clone();
    std::thread::spawn(move || {
        // Kept fixed: the interrupt must land while the script is inside its 30 s sleep.
        std::thread::sleep(Duration::from_millis(1000));
        s2.trigger(StopReason::Cancelled);
    });
    let t0 = Instant::now();
    let r = h.run_with("log(\"sleeping\");\nsleep(\"30s\");", |o| o.interrupt = Some(stop));
    assert!(t0.elapsed() < Duration::from_secs(5));
    assert_eq!(r.status(), Status::Cancelled);
    assert_eq!(r.error.unwrap().kind, ScriptErrorKind::Cancelled);
    assert_eq!(r.logs[0].message, "sleeping");
}

#[test]
fn stdlib_and_local_modules_import() {
    let h = harness();
    h.write("lib/helper.rhai", "/// Doubles.\nfn double(x) { x * 2 }\n");
    let stdlib = h.dir.join("mystdlib");
    std::fs::create_dir_all(&stdlib).unwrap();
    std::fs::write(stdlib.join("extra.rhai"), "fn answer() { 42 }\n").unwrap();
    let env = ScriptEnv { stdlib_dir: Some(stdlib), ..ScriptEnv::default() };
    let script = h
        .compile_with(
            r#"
            import "stats" as stats;
            import "assert" as a;
            import "mcp" as mcp;
            import "lib/helper" as helper;
            import "extra" as extra;
            a::approx(stats::mean([1, 2, 3, 4]), 2.5, 1e-9, "mean");
            a::approx(stats::stddev([2, 4, 4, 4, 5, 5, 7, 9]), 2.13808993529939, 1e-9, "stddev");
            a::approx(stats::percentile([1, 2, 3, 4, 5], 50), 3.0, 1e-9, "median");
            a::approx(stats::percentile([10, 20], 90), 19.0, 1e-9, "interpolated percentile");
            a::eq(stats::summary([]).count, 0, "empty summary");
            a::eq(stats::max([3, 9, 1]), 9, "max");
            let s = connect();
            a::eq(mcp::text(mcp::echo(s, "hi")), "Echo: hi", "echo text");
            a::contains(mcp::names(s.tools_list()), "echo", "tool names");
            let m = mcp::ping_many(s, 10);
            a::eq(m.ok, 10, "ping_many counts");
            threshold(m, ["p99 < 1s", "error_rate == 0", "count == 10"]);
            a::ok(s.tool("fail"), "an assert::ok that fails");
            a::rpc_error(s.tool("fail", #{code: -32099}), -32099, "rpc_error");
            a::eq(helper::double(21), extra::answer(), "local and stdlib-dir modules");
            a::eq(1, 2, "deliberate");
            "#,
            &env,
        )
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(script.info.imports.contains("lib/helper"));
    let r = h.run_script(script, h.opts());
    no_error(&r);
    let failed: Vec<_> = r
        .root
        .checks
        .iter()
        .filter(|c| c.failed > 0)
        .map(|c| (c.name.as_str(), c.failures[0].detail.clone().unwrap()))
        .collect();
    assert_eq!(failed.len(), 2, "{failed:?}");
    assert_eq!(failed[0].0, "an assert::ok that fails");
    assert!(failed[0].1.contains("tools/call failed: rpc -32603"), "{}", failed[0].1);
    assert_eq!(failed[1], ("deliberate", "expected 2, got 1".to_string()));
    assert_eq!(r.root.assertions.passed, 14);
}

#[test]
fn the_sandbox_refuses_file_access() {
    let h = harness();
    for src in ["import \"/etc/passwd\" as p;", "import \"../secret\" as p;", "import \"lib.rhai\" as p;"] {
        let e = h.compile(src).err().expect(src).to_string();
        assert!(e.contains("is refused") && e.contains("no file access"), "{e}");
    }
    for f in ["read_file", "open", "open_file", "system", "exec"] {
        let e = h.compile(&format!("{f}(\"/etc/passwd\");")).err().expect(f).to_string();
        assert!(e.contains(&format!("unknown function '{f}'")), "{e}");
    }
    let e = h.compile("eval(\"1 + 1\");").err().expect("eval is disabled").to_string();
    assert!(e.contains("eval"), "{e}");
    // Computed paths are checked when the import runs.
    let r = h.run("let p = \"/etc/hostname\";\nimport p as m;");
    let e = r.error.unwrap();
    assert!(e.message.contains("is refused"), "{e:?}");
    // A symlink out of the script's folder is refused too.
    std::os::unix::fs::symlink("/etc/passwd", h.dir.join("escape.rhai")).unwrap();
    let e = h.compile("import \"escape\" as x;").err().unwrap().to_string();
    assert!(e.contains("leads outside"), "{e}");
}

#[test]
fn fail_ends_the_script_as_failed() {
    let h = harness();
    let r = h.run("check(true, \"before\");\nfail(\"giving up\");\ncheck(true, \"after\");");
    let e = r.error.as_ref().unwrap();
    assert_eq!((e.kind, e.message.as_str(), e.line), (ScriptErrorKind::Fail, "giving up", Some(2)));
    assert_eq!(r.root.assertions, Assertions { passed: 1, failed: 1 });
    assert_eq!(r.status(), Status::Failed);
}

#[test]
fn parameters_take_the_type_of_their_default() {
    let h = harness();
    let src = r#"
        let n = param("n", 1);
        let d = param("wait", "5s");
        let on = param("on", false);
        let sizes = param("sizes", [1]);
        check(type_of(n) == "i64" && n == 5, "int", `${n}`);
        check(d == "250ms", "duration", d);
        check(on == true, "bool");
        check(sizes == [1, 2, 3], "array", `${sizes}`);
        sleep(d);
    "#;
    let script = h.compile(src).unwrap();
    let params = Params::parse(&["n=5", "wait=250ms", "on=true", "sizes=[1,2,3]"]).unwrap();
    script.check_params(&params).unwrap();
    let r = h.run_script(script, RunOptions { params, ..h.opts() });
    all_passed(&r);
    assert_eq!(r.params["n"], 5);
    assert_eq!(r.params["wait"], "250ms");

    let script = h.compile(src).unwrap();
    let e = script.check_params(&Params::parse(&["n=many"]).unwrap()).unwrap_err().to_string();
    assert!(e.contains(":2:17: --set n=many: parameter 'n' expects an integer (its default is 1)"), "{e}");
    let e = script.check_params(&Params::parse(&["wiat=1s"]).unwrap()).unwrap_err().to_string();
    assert!(e.contains("the script has no parameter 'wiat'") && e.contains("did you mean wait?"), "{e}");
    let e =
        h.compile("let x = param(\"required\");").unwrap().check_params(&Params::default()).unwrap_err().to_string();
    assert!(e.contains("parameter 'required' is required: pass --set required=VALUE"), "{e}");

    // A computed default is checked when param() runs; the error is a parameter error.
    let r = h.run_with("let d = 1 + 1;\nlet n = param(\"n\", d);", |o| o.params = Params::parse(&["n=x"]).unwrap());
    let e = r.error.unwrap();
    assert_eq!(e.kind, ScriptErrorKind::Param);
    assert!(e.message.contains("parameter 'n' expects an integer"), "{}", e.message);
}

#[test]
fn the_seed_makes_randomness_repeatable() {
    let h = harness();
    let src = "let xs = [];\nfor i in 0..8 { xs.push(random_int(0, 1000000)); }\nlog(`${xs} ${random()}`);";
    let a = h.run_with(src, |o| o.seed = 42);
    let b = h.run_with(src, |o| o.seed = 42);
    let c = h.run_with(src, |o| o.seed = 43);
    assert_eq!(a.logs[0].message, b.logs[0].message);
    assert_ne!(a.logs[0].message, c.logs[0].message);
}

#[test]
fn one_compiled_script_runs_on_many_threads() {
    let h = harness();
    let script = Arc::new(
        h.compile("let s = connect();\nfor i in 0..20 { check(s.ping().ok, \"ping\"); }\ncheck(s.tool(\"echo\", #{message: `${random()}`}).ok, \"echo\");")
            .unwrap(),
    );
    let threads: Vec<_> = (0..16)
        .map(|i| runner::spawn(script.clone(), RunOptions { seed: i, ..h.opts() }, h.rt.handle().clone()).unwrap())
        .collect();
    for t in threads {
        let r = t.join().unwrap();
        all_passed(&r);
        assert_eq!(r.root.assertions.passed, 21);
    }
}

#[test]
fn print_and_debug_go_to_the_log() {
    let h = harness();
    let r = h.run("print(\"hello\");\ndebug(\"dbg\");\nlog(`n=${1 + 1}`);\nlog(#{a: [1, true]});\ncheck(log(100.0) == 2.0, \"log of a number is math\");");
    all_passed(&r);
    let lines: Vec<_> = r.logs.iter().map(|l| l.message.as_str()).collect();
    assert_eq!(lines[0], "hello");
    assert!(lines[1].contains("dbg") && lines[1].contains(":2:"), "{lines:?}");
    assert_eq!(lines[2], "n=2");
    assert_eq!(lines[3], "#{\"a\": [1, true]}");
    assert_eq!(lines.len(), 4);
}
