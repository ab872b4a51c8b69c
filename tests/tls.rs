//! TLS end to end, through the binary: `mcpscript serve` over https://, sse+https:// and
//! wss:// with a certificate made here by rcgen (a test CA signing a leaf for localhost and
//! 127.0.0.1), `call` and `run` (a script and a load phase in worker processes) trusting it
//! with `--ca-cert`, `--insecure`, and the failures: a CA that did not sign the server's
//! certificate, an expired certificate, missing or wrong files, TLS listeners without one.

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};
use tempfile::TempDir;

const BIN: &str = env!("CARGO_BIN_EXE_mcpscript");

/// Certificates and keys in a temporary folder.
struct Pki {
    dir: TempDir,
}

impl Pki {
    /// A CA, a leaf it signs for localhost and 127.0.0.1 (`server.pem`, `server.key`), an
    /// expired leaf (`expired.pem`, `expired.key`), and an unrelated CA (`other_ca.pem`).
    fn new() -> Pki {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, text: String| std::fs::write(dir.path().join(name), text).unwrap();
        let (ca_params, ca_key, ca_pem) = ca("mcpscript test CA");
        write("ca.pem", ca_pem);
        let issuer = Issuer::new(ca_params, ca_key);
        let names = vec!["localhost".to_string(), "127.0.0.1".to_string()];
        let key = KeyPair::generate().unwrap();
        let leaf = CertificateParams::new(names.clone()).unwrap().signed_by(&key, &issuer).unwrap();
        write("server.pem", leaf.pem());
        write("server.key", key.serialize_pem());
        let mut old = CertificateParams::new(names).unwrap();
        old.not_before = rcgen::date_time_ymd(2000, 1, 1);
        old.not_after = rcgen::date_time_ymd(2001, 1, 1);
        let old_key = KeyPair::generate().unwrap();
        write("expired.pem", old.signed_by(&old_key, &issuer).unwrap().pem());
        write("expired.key", old_key.serialize_pem());
        write("other_ca.pem", ca("someone else's CA").2);
        write("other.key", KeyPair::generate().unwrap().serialize_pem());
        Pki { dir }
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).to_str().unwrap().to_string()
    }
}

/// A self-signed CA: its parameters, key and PEM certificate.
fn ca(name: &str) -> (CertificateParams, KeyPair, String) {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    let key = KeyPair::generate().unwrap();
    let pem = params.self_signed(&key).unwrap().pem();
    (params, key, pem)
}

/// A `mcpscript serve` child and the URLs it announced; killed when dropped.
struct Serve {
    child: Child,
    urls: Vec<String>,
}

impl Serve {
    fn start(args: &[&str], expect_urls: usize) -> Serve {
        let mut child = Command::new(BIN)
            .arg("serve")
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut urls = vec![];
        while urls.len() < expect_urls {
            let line = lines.next().expect("serve printed its URLs").unwrap();
            urls.push(line.strip_prefix("listening ").expect("a listening line").to_string());
        }
        Serve { child, urls }
    }

    /// Serves https://, wss:// and sse+https:// on free ports with `cert` and `key`.
    fn tls(pki: &Pki, cert: &str, key: &str) -> Serve {
        let (cert, key) = (pki.path(cert), pki.path(key));
        Serve::start(
            &[
                "--listen",
                "https://127.0.0.1:0/mcp",
                "--listen",
                "wss://127.0.0.1:0/ws",
                "--listen",
                "sse+https://127.0.0.1:0/sse",
                "--tls-cert",
                &cert,
                "--tls-key",
                &key,
            ],
            3,
        )
    }

    fn url(&self, scheme: &str) -> String {
        let prefix = format!("{scheme}://");
        self.urls
            .iter()
            .find(|u| u.starts_with(&prefix))
            .unwrap_or_else(|| panic!("no {scheme} in {:?}", self.urls))
            .clone()
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs mcpscript with `args`; (exit code, stdout, stderr).
fn mcpscript(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(BIN).args(args).env("MCPSCRIPT_NO_HISTORY", "1").stdin(Stdio::null()).output().unwrap();
    decode(out)
}

fn decode(out: Output) -> (i32, String, String) {
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `mcpscript run SCRIPT --target TARGET EXTRA...` in `dir`; (exit code, stderr, results).
fn run_script(dir: &Path, script: &str, target: &str, extra: &[&str], env: &[(&str, &str)]) -> (i32, String, Value) {
    let file = dir.join("tls.rhai");
    std::fs::write(&file, script).unwrap();
    let out_dir = dir.join("out");
    let mut c = Command::new(BIN);
    c.args(["run", file.to_str().unwrap(), "--target", target, "--out", out_dir.to_str().unwrap(), "-q"])
        .args(extra)
        .env("MCPSCRIPT_NO_HISTORY", "1")
        .env_remove("MCPSCRIPT_MAX_CONNS_PER_PROCESS")
        .env_remove("MCPSCRIPT_STDLIB")
        .stdin(Stdio::null());
    for (k, v) in env {
        c.env(k, v);
    }
    let (code, _, err) = decode(c.output().unwrap());
    let results =
        std::fs::read(out_dir.join("results.json")).map(|b| serde_json::from_slice(&b).unwrap()).unwrap_or(Value::Null);
    (code, err, results)
}

const ECHO: &str = r#"{"name":"echo","arguments":{"message":"over tls"}}"#;

#[test]
fn call_works_over_https_wss_and_sse_https_with_the_ca() {
    let pki = Pki::new();
    let serve = Serve::tls(&pki, "server.pem", "server.key");
    let ca = pki.path("ca.pem");
    for scheme in ["https", "wss", "sse+https"] {
        let url = serve.url(scheme);
        let (code, out, err) = mcpscript(&["call", &url, "tools/call", ECHO, "--ca-cert", &ca]);
        assert_eq!(code, 0, "{url}: {err}");
        let v: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["content"][0]["text"], "Echo: over tls", "{url}");
        assert!(!err.contains("warning"), "no warning without --insecure: {err}");
    }
    // The certificate names localhost too: SNI and verification follow the URL's host.
    let by_name = serve.url("https").replace("127.0.0.1", "localhost");
    let (code, _, err) = mcpscript(&["call", &by_name, "ping", "--ca-cert", &ca]);
    assert_eq!(code, 0, "{by_name}: {err}");
}

#[test]
fn insecure_accepts_an_untrusted_certificate_and_warns_once() {
    let pki = Pki::new();
    let serve = Serve::tls(&pki, "server.pem", "server.key");
    let url = serve.url("https");
    let (code, _, err) = mcpscript(&["call", &url, "ping"]);
    assert_eq!(code, 1, "not trusted without --ca-cert: {err}");
    assert!(err.contains("certificate verification failed") && err.contains("--ca-cert"), "{err}");
    let (code, out, err) = mcpscript(&["call", &url, "ping", "--insecure"]);
    assert_eq!((code, out.trim()), (0, "{}"), "{err}");
    assert_eq!(err.matches("warning: --insecure").count(), 1, "{err}");
}

#[test]
fn a_script_and_a_load_phase_in_worker_processes_run_over_https() {
    let pki = Pki::new();
    let serve = Serve::tls(&pki, "server.pem", "server.key");
    let work = tempfile::tempdir().unwrap();
    let script = r#"
let s = connect();
let r = s.tool("echo", #{message: "tls"});
check(r.ok, "echo over TLS", `${r}`);
let c = load::closed(#{name: "closed_tls", sessions: 12, iterations: 240});
check(c.ok == 240, "every request of the closed phase succeeds", `${c.ok} ok, errors ${c.errors}`);
let k = load::connect(#{name: "connect_tls", sessions: 30, rate: 1000, hold: "100ms"});
check(k.connect.ok == 30, "every session of the connect phase is established", `${k.connect.ok}: ${k.connect.errors}`);
"#;
    let ca = pki.path("ca.pem");
    // Eight connections per process: the 12 and 30 sessions need worker processes, which
    // get the TLS settings through the load plan.
    let (code, err, results) = run_script(
        work.path(),
        script,
        &serve.url("https"),
        &["--ca-cert", &ca],
        &[("MCPSCRIPT_MAX_CONNS_PER_PROCESS", "8")],
    );
    assert_eq!(code, 0, "{err}\n{results}");
    let text = results.to_string();
    assert!(text.contains("closed_tls") && text.contains("connect_tls"), "{text}");
    let phases = results["scenarios"][0]["phases"].as_array().cloned().unwrap_or_default();
    let workers: Vec<usize> = phases.iter().map(|p| p["workers"].as_array().map_or(0, Vec::len)).collect();
    assert!(workers.len() == 2 && workers.iter().all(|&w| w > 1), "both phases ran in worker processes: {workers:?}");

    // The same run with an unrelated CA fails (exit 1), naming certificate verification.
    let started = Instant::now();
    let (code, err, results) =
        run_script(work.path(), script, &serve.url("https"), &["--ca-cert", &pki.path("other_ca.pem")], &[]);
    assert_eq!(code, 1, "{err}");
    let all = format!("{err}{results}");
    assert!(all.contains("certificate verification failed"), "{all}");
    assert!(started.elapsed() < Duration::from_secs(30), "a failed handshake fails fast, not by timeout");
}

#[test]
fn a_wrong_ca_or_an_expired_certificate_fails_the_call_with_exit_1() {
    let pki = Pki::new();
    let serve = Serve::tls(&pki, "server.pem", "server.key");
    for scheme in ["https", "wss", "sse+https"] {
        let url = serve.url(scheme);
        let (code, _, err) = mcpscript(&["call", &url, "ping", "--ca-cert", &pki.path("other_ca.pem")]);
        assert_eq!(code, 1, "{url}: {err}");
        assert!(err.contains("certificate verification failed") && err.contains("UnknownIssuer"), "{url}: {err}");
    }
    let expired = Serve::tls(&pki, "expired.pem", "expired.key");
    let (code, _, err) = mcpscript(&["call", &expired.url("https"), "ping", "--ca-cert", &pki.path("ca.pem")]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("certificate verification failed") && err.contains("expired"), "{err}");
}

#[test]
fn a_silent_client_does_not_hold_up_other_handshakes() {
    let pki = Pki::new();
    let serve = Serve::tls(&pki, "server.pem", "server.key");
    let url = serve.url("https");
    let addr = url.trim_start_matches("https://").split('/').next().unwrap().to_string();
    // Connections that never start their handshake: each waits in its own task.
    let _silent: Vec<_> = (0..4).map(|_| std::net::TcpStream::connect(&addr).unwrap()).collect();
    let started = Instant::now();
    let (code, _, err) = mcpscript(&["call", &url, "ping", "--ca-cert", &pki.path("ca.pem")]);
    assert_eq!(code, 0, "{err}");
    assert!(started.elapsed() < Duration::from_secs(5), "took {:?}", started.elapsed());
}

#[test]
fn bad_tls_input_is_refused_with_exit_2() {
    let pki = Pki::new();
    let missing = pki.path("nope.pem");
    let https = "https://127.0.0.1:0/mcp";
    let cases: Vec<(Vec<String>, &str)> = vec![
        (vec!["--tls-cert".into(), missing.clone(), "--tls-key".into(), pki.path("server.key")], "nope.pem"),
        (
            vec!["--tls-cert".into(), pki.path("server.pem"), "--tls-key".into(), pki.path("other.key")],
            "does not match",
        ),
        (
            vec!["--tls-cert".into(), pki.path("server.key"), "--tls-key".into(), pki.path("server.key")],
            "no PEM certificate",
        ),
        (
            vec!["--tls-cert".into(), pki.path("server.pem"), "--tls-key".into(), pki.path("server.pem")],
            "no PEM private key",
        ),
        (vec![], "--tls-cert"),
    ];
    for (extra, needle) in cases {
        let mut args = vec!["serve".to_string(), "--listen".into(), https.into()];
        args.extend(extra);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (code, _, err) = mcpscript(&args);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: {err}");
    }
    let (code, _, err) = mcpscript(&["call", "https://127.0.0.1:1/mcp", "ping", "--ca-cert", &missing]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--ca-cert") && err.contains("nope.pem"), "{err}");
}
