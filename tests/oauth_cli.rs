//! `mcpscript run --oauth` end to end against a small in-test MCP server and authorization
//! server on loopback: a 401 without a challenge and without `--oauth` is one clear error,
//! a token endpoint answering garbage (or nothing) is one clear error naming it (within the
//! deadline), and a successful flow leaves neither the token nor the client secret in any
//! output (stdout, stderr with trace logging, every file of `--out`).

use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_mcpscript");
const TOKEN: &str = "tok-7f3c9e-SECRET-ACCESS";
const CLIENT_SECRET: &str = "sec-91ab4d-SECRET-CLIENT";

/// A request as the fake servers see it.
struct Req {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: String,
}

impl Req {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// What to answer: status, extra headers, body; `None`: never answer (hold the socket).
type Answer = Option<(u16, Vec<(&'static str, String)>, String)>;

/// Serves `handler` on 127.0.0.1 (a thread per connection) until the test ends.
fn serve(handler: impl Fn(&Req, u16) -> Answer + Send + Sync + 'static) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let handler = Arc::new(handler);
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let h = handler.clone();
            std::thread::spawn(move || connection(stream, &*h, port));
        }
    });
    port
}

fn connection(stream: TcpStream, handler: &dyn Fn(&Req, u16) -> Answer, port: u16) {
    stream.set_read_timeout(Some(Duration::from_secs(20))).ok();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut out = stream;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let mut parts = line.split_whitespace();
        let (method, path) = (parts.next().unwrap_or("").to_string(), parts.next().unwrap_or("").to_string());
        let mut headers = Vec::new();
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((n, v)) = h.split_once(':') {
                headers.push((n.trim().to_string(), v.trim().to_string()));
            }
        }
        let len = headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
            .and_then(|(_, v)| v.parse::<usize>().ok())
            .unwrap_or(0);
        let mut body = vec![0u8; len];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let req = Req { method, path, headers, body: String::from_utf8_lossy(&body).into_owned() };
        let Some((status, extra, body)) = handler(&req, port) else {
            std::thread::sleep(Duration::from_secs(30));
            return;
        };
        let mut head = format!("HTTP/1.1 {status} X\r\ncontent-length: {}\r\n", body.len());
        for (n, v) in extra {
            head.push_str(&format!("{n}: {v}\r\n"));
        }
        head.push_str("\r\n");
        if out.write_all(head.as_bytes()).and_then(|_| out.write_all(body.as_bytes())).is_err() {
            return;
        }
    }
}

fn json_reply(v: Value) -> Answer {
    Some((200, vec![("content-type", "application/json".into())], v.to_string()))
}

/// A minimal MCP server at /mcp (initialize, notifications, tools/list).
fn mcp(req: &Req) -> Answer {
    if req.method != "POST" {
        return Some((405, vec![], String::new()));
    }
    let msg: Value = serde_json::from_str(&req.body).unwrap_or(Value::Null);
    let Some(id) = msg.get("id").cloned() else { return Some((202, vec![], String::new())) };
    let result = match msg["method"].as_str() {
        Some("initialize") => {
            json!({"protocolVersion": msg["params"]["protocolVersion"], "capabilities": {"tools": {}},
            "serverInfo": {"name": "oauth-test", "version": "1"}})
        }
        Some("tools/list") => json!({"tools": []}),
        _ => json!({}),
    };
    json_reply(json!({"jsonrpc": "2.0", "id": id, "result": result}))
}

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
                Some((401, vec![("www-authenticate", challenge)], String::new()))
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
            _ => Some((404, vec![], "not found".into())),
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

const CC: [&str; 4] = ["--oauth-client-id", "cid", "--oauth-grant", "client_credentials"];

#[test]
fn a_401_without_a_challenge_and_without_oauth_is_one_clear_error() {
    let port = serve(|_, _| Some((401, vec![], String::new())));
    let dir = tempfile::tempdir().unwrap();
    let (code, _, err, _) = run(dir.path(), port, &[]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("HTTP 401 unauthorized (WWW-Authenticate: none given)"), "{err}");
    assert_eq!(err.lines().filter(|l| l.starts_with("error")).count(), 1, "{err}");
}

#[test]
fn a_token_endpoint_answering_garbage_is_named() {
    let port = protected(
        |_| Some((200, vec![("content-type", "text/html".into())], "<html>oops</html>".into())),
        Default::default(),
    );
    let dir = tempfile::tempdir().unwrap();
    let mut args = CC.to_vec();
    args.extend(["--oauth-client-secret", CLIENT_SECRET]);
    let (code, _, err, _) = run(dir.path(), port, &args);
    assert_eq!(code, Some(1), "{err}");
    let want = format!("the token endpoint http://127.0.0.1:{port}/token answered HTTP 200 but not with a token");
    assert!(err.contains(&want) && err.contains("<html>oops</html>"), "{err}");
}

#[test]
fn a_token_endpoint_that_never_answers_fails_within_the_deadline() {
    let port = protected(|_| None, Default::default());
    let dir = tempfile::tempdir().unwrap();
    let mut args = CC.to_vec();
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
    let mut cmd_args = CC.to_vec();
    cmd_args.push("--oauth");
    let mut cmd = Command::new(BIN);
    cmd.arg("run")
        .arg(script(dir.path()))
        .args(["--target", &format!("http://127.0.0.1:{port}/mcp"), "--out"])
        .arg(dir.path().join("out"))
        .args(&cmd_args)
        .env("RUST_LOG", "trace")
        .env("MCPSCRIPT_OAUTH_CLIENT_SECRET", CLIENT_SECRET);
    let out = cmd.output().unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    // The flow really ran: the server saw requests carrying the token.
    assert!(seen.lock().unwrap().iter().any(|b| b.contains("tools/list")));
    let mut outputs = vec![("stdout".to_string(), stdout.into_owned()), ("stderr".to_string(), stderr.into_owned())];
    let mut stack = vec![dir.path().join("out")];
    while let Some(p) = stack.pop() {
        for e in std::fs::read_dir(&p).unwrap().flatten() {
            if e.path().is_dir() {
                stack.push(e.path());
            } else {
                outputs.push((
                    e.path().display().to_string(),
                    String::from_utf8_lossy(&std::fs::read(e.path()).unwrap()).into_owned(),
                ));
            }
        }
    }
    assert!(outputs.len() > 2, "the run wrote no files");
    for (name, text) in &outputs {
        assert!(!text.contains(TOKEN), "{name} shows the access token");
        assert!(!text.contains(CLIENT_SECRET), "{name} shows the client secret");
    }
}
