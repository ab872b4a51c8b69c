//! `mcpscript run --oauth` end to end against a small in-test MCP server and authorization
//! server on loopback (`tests/common/oauth.rs`): a 401 without a challenge and without
//! `--oauth` is one clear error, a token endpoint answering garbage (or nothing) is one
//! clear error naming it (within the deadline), and a successful flow leaves neither the
//! token nor the client secret in any output (stdout, stderr with trace logging, every
//! file of `--out`). The Streamable HTTP GET stream and legacy SSE (its GET and its POSTs)
//! carry the token, and get a new one when the server refuses theirs.

mod common;

use common::oauth::{
    assert_no_secrets, json_reply, mcp, serve, Answer, Config, Protected, Req, Seen, CC, CLIENT_SECRET,
};
use serde_json::json;
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_mcpscript");
const TOKEN: &str = "tok-7f3c9e-SECRET-ACCESS";

/// An MCP server behind OAuth (client credentials) whose token endpoint answers with `token`.
fn protected(token: fn(&Req) -> Answer, seen: Arc<Mutex<Vec<String>>>) -> u16 {
    serve(move |req, port| {
        let base = format!("http://127.0.0.1:{port}");
        match req.path.as_str() {
            "/mcp" => {
                if req.header("authorization") == Some(&format!("Bearer {TOKEN}")) {
                    seen.lock().unwrap().push(req.body.clone());
                    return mcp(req);
                }
                let challenge =
                    format!(r#"Bearer resource_metadata="{base}/.well-known/oauth-protected-resource/mcp""#);
                Answer::Reply(401, vec![("www-authenticate", challenge)], String::new())
            }
            "/.well-known/oauth-protected-resource/mcp" => {
                json_reply(json!({"resource": format!("{base}/mcp"), "authorization_servers": [base]}))
            }
            "/.well-known/oauth-authorization-server" => json_reply(json!({
                "issuer": base, "token_endpoint": format!("{base}/token"),
                "grant_types_supported": ["client_credentials"],
                "token_endpoint_auth_methods_supported": ["client_secret_basic"],
            })),
            "/token" => token(req),
            _ => Answer::Reply(404, vec![], "not found".into()),
        }
    })
}

fn script(dir: &Path) -> std::path::PathBuf {
    let p = dir.join("s.rhai");
    std::fs::write(
        &p,
        "let s = connect();\nlet t = s.tools_list();\ncheck(t.ok, `tools/list: ${t.error}`);\ns.close();\n",
    )
    .unwrap();
    p
}

/// Runs `mcpscript run` (bounded), returning exit code, stdout, stderr and the elapsed time.
fn run(dir: &Path, port: u16, extra: &[&str]) -> (Option<i32>, String, String, Duration) {
    let mut cmd = Command::new(BIN);
    cmd.arg("run")
        .arg(script(dir))
        .args(["--target", &format!("http://127.0.0.1:{port}/mcp"), "--request-timeout", "2s", "--out"])
        .arg(dir.join("out"))
        .args(extra)
        .env("RUST_LOG", "trace")
        .env_remove("MCPSCRIPT_OAUTH_CLIENT_SECRET")
        .env_remove("MCPSCRIPT_BEARER");
    let start = Instant::now();
    let out = cmd.output().unwrap();
    let (o, e) = (String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned());
    (out.status.code(), o, e, start.elapsed())
}

#[test]
fn a_401_without_a_challenge_and_without_oauth_is_one_clear_error() {
    let port = serve(|_, _| Answer::Reply(401, vec![], String::new()));
    let dir = tempfile::tempdir().unwrap();
    let (code, _, err, _) = run(dir.path(), port, &[]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("HTTP 401 unauthorized (WWW-Authenticate: none given)"), "{err}");
    assert_eq!(err.lines().filter(|l| l.starts_with("error")).count(), 1, "{err}");
}

#[test]
fn a_token_endpoint_answering_garbage_is_named() {
    let port = protected(
        |_| Answer::Reply(200, vec![("content-type", "text/html".into())], "<html>oops</html>".into()),
        Default::default(),
    );
    let dir = tempfile::tempdir().unwrap();
    let mut args = CC[1..].to_vec();
    args.extend(["--oauth-client-secret", CLIENT_SECRET]);
    let (code, _, err, _) = run(dir.path(), port, &args);
    assert_eq!(code, Some(1), "{err}");
    let want = format!("the token endpoint http://127.0.0.1:{port}/token answered HTTP 200 but not with a token");
    assert!(err.contains(&want) && err.contains("<html>oops</html>"), "{err}");
}

#[test]
fn a_token_endpoint_that_never_answers_fails_within_the_deadline() {
    let port = protected(|_| Answer::Hold, Default::default());
    let dir = tempfile::tempdir().unwrap();
    let mut args = CC[1..].to_vec();
    args.extend(["--oauth-client-secret", CLIENT_SECRET]);
    let (code, _, err, took) = run(dir.path(), port, &args);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains(&format!("POST http://127.0.0.1:{port}/token: no answer within")), "{err}");
    assert!(took < Duration::from_secs(15), "took {took:?}");
}

#[test]
fn the_token_and_the_client_secret_never_show_in_any_output() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let port = protected(
        |req| {
            let basic = req.header("authorization").unwrap_or("");
            assert!(basic.starts_with("Basic "), "client_secret_basic expected, got {basic:?}");
            assert!(
                req.body.contains("grant_type=client_credentials") && req.body.contains("resource="),
                "{}",
                req.body
            );
            json_reply(json!({"access_token": TOKEN, "token_type": "Bearer", "expires_in": 3600}))
        },
        seen.clone(),
    );
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(BIN);
    cmd.arg("run")
        .arg(script(dir.path()))
        .args(["--target", &format!("http://127.0.0.1:{port}/mcp"), "--out"])
        .arg(dir.path().join("out"))
        .args(CC)
        .env("RUST_LOG", "trace")
        .env("MCPSCRIPT_OAUTH_CLIENT_SECRET", CLIENT_SECRET);
    let out = cmd.output().unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    // The flow really ran: the server saw requests carrying the token.
    assert!(seen.lock().unwrap().iter().any(|b| b.contains("tools/list")));
    assert_no_secrets(&stdout, &stderr, &dir.path().join("out"));
}

/// Runs `script` against `target` with `--oauth` (client credentials); returns the exit
/// code and stderr, having checked that no output shows a token or the secret.
fn run_oauth(target: &str, script: &str) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("s.rhai");
    std::fs::write(&file, script).unwrap();
    let out = Command::new(BIN)
        .arg("run")
        .arg(&file)
        .args(["--target", target, "--request-timeout", "5s", "--out"])
        .arg(dir.path().join("out"))
        .args(CC)
        .env("RUST_LOG", "debug")
        .env("MCPSCRIPT_OAUTH_CLIENT_SECRET", CLIENT_SECRET)
        .env_remove("MCPSCRIPT_BEARER")
        .output()
        .unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_no_secrets(&stdout, &stderr, &dir.path().join("out"));
    (out.status.code(), stderr.into_owned())
}

/// How each `method` request to `path` (query aside) went, in order.
fn requests_to(p: &Protected, method: &str, path: &str) -> Vec<Seen> {
    let log = p.state.log();
    log.into_iter().filter(|(m, pa, _, _)| m == method && pa.split('?').next() == Some(path)).map(|r| r.3).collect()
}

/// Token 1 is accepted for 1.5 s, later ones for a minute.
fn first_for_1500ms(n: usize) -> Duration {
    Duration::from_millis(if n == 1 { 1500 } else { 60_000 })
}

#[test]
fn the_get_stream_carries_the_token_and_gets_a_new_one_when_refused() {
    // The first token is good for 1.5 s and says nothing of it: the GET stream (reopened
    // every 200 ms) learns of the expiry by a 401 and must get a new token itself.
    let p = Protected::start(Config { expires_in: None, valid_for: first_for_1500ms });
    let script = "let s = connect();\nsleep(\"2500ms\");\nlet t = s.tools_list();\ncheck(t.ok, `tools/list: ${t.error}`);\ns.close();\n";
    let (code, err) = run_oauth(&p.url("/mcp"), script);
    assert_eq!(code, Some(0), "{err}");
    let gets = requests_to(&p, "GET", "/mcp");
    assert!(!gets.contains(&Seen::Missing), "a GET went without the token: {gets:?}");
    assert!(gets.contains(&Seen::Token(1)) && gets.contains(&Seen::Token(2)), "{gets:?}");
    assert_eq!(gets.iter().filter(|s| matches!(s, Seen::Stale(_))).count(), 1, "one refusal, then token 2: {gets:?}");
    // Token 2 was fetched for the GET stream's refusal, and the POST after the sleep used it.
    assert_eq!(p.state.tokens(), 2);
    let posts = requests_to(&p, "POST", "/mcp");
    assert_eq!(posts.last(), Some(&Seen::Token(2)), "{posts:?}");
}

#[test]
fn legacy_sse_gets_a_token_for_its_stream_and_its_posts() {
    let p = Protected::start(Config { expires_in: None, valid_for: first_for_1500ms });
    let script = "let s = connect();\nlet t = s.tools_list();\ncheck(t.ok, `first: ${t.error}`);\n\
        sleep(\"2s\");\nlet u = s.tools_list();\ncheck(u.ok, `after expiry: ${u.error}`);\ns.close();\n";
    let (code, err) = run_oauth(&format!("sse+{}", p.url("/sse")), script);
    assert_eq!(code, Some(0), "{err}");
    // The first GET of the stream was refused (no token yet), then opened with token 1.
    assert_eq!(requests_to(&p, "GET", "/sse"), vec![Seen::Missing, Seen::Token(1)]);
    // Every POST carried a token; the one after the expiry was refused and sent again with token 2.
    let posts = requests_to(&p, "POST", "/message");
    assert!(!posts.contains(&Seen::Missing), "{posts:?}");
    assert!(posts.contains(&Seen::Stale(1)) && posts.last() == Some(&Seen::Token(2)), "{posts:?}");
    assert_eq!(p.state.tokens(), 2);
}
