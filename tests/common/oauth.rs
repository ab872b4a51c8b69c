//! A small MCP server behind OAuth on loopback, written for the OAuth tests: a thread per
//! connection ([`serve`]), keep-alive, answers with a `Content-Length` or an event stream
//! fed from a channel. [`Protected`] is a whole protected resource and its authorization
//! server in one: `/mcp` (Streamable HTTP: POST, a GET stream that ends after one event
//! and asks to be reopened 200 ms later, DELETE), `/sse` and `/message` (legacy SSE), the
//! protected-resource and authorization-server metadata, and a client-credentials token
//! endpoint issuing numbered tokens (`tok-N-SECRET-ACCESS`) that the resource accepts for
//! a while ([`Config::valid_for`]), answering 401 with a `WWW-Authenticate` challenge
//! otherwise. It
//! counts what it saw: token requests, and every request by whether (and with which token)
//! it was authorized.

use serde_json::{json, Value};
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What every issued token contains (and no output may).
pub const TOKEN_MARK: &str = "SECRET-ACCESS";
pub const CLIENT_SECRET: &str = "sec-91ab4d-SECRET-CLIENT";

/// A request as the fake servers see it.
pub struct Req {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Req {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// What to answer.
pub enum Answer {
    /// Status, extra headers, body (sent with its `Content-Length`).
    Reply(u16, Vec<(&'static str, String)>, String),
    /// An event stream: each string from the channel is written as it comes; the
    /// connection closes when the channel does.
    Stream(mpsc::Receiver<String>),
    /// Never answer (hold the socket).
    Hold,
}

/// Serves `handler` on 127.0.0.1 (a thread per connection) until the test ends.
pub fn serve(handler: impl Fn(&Req, u16) -> Answer + Send + Sync + 'static) -> u16 {
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

fn read_request(reader: &mut BufReader<TcpStream>) -> Option<Req> {
    let mut line = String::new();
    if reader.read_line(&mut line).unwrap_or(0) == 0 {
        return None;
    }
    let mut parts = line.split_whitespace();
    let (method, path) = (parts.next().unwrap_or("").to_string(), parts.next().unwrap_or("").to_string());
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).unwrap_or(0) == 0 {
            return None;
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
    reader.read_exact(&mut body).ok()?;
    Some(Req { method, path, headers, body: String::from_utf8_lossy(&body).into_owned() })
}

fn connection(stream: TcpStream, handler: &dyn Fn(&Req, u16) -> Answer, port: u16) {
    stream.set_read_timeout(Some(Duration::from_secs(20))).ok();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut out = stream;
    while let Some(req) = read_request(&mut reader) {
        match handler(&req, port) {
            Answer::Reply(status, extra, body) => {
                let mut head = format!("HTTP/1.1 {status} X\r\ncontent-length: {}\r\n", body.len());
                for (n, v) in extra {
                    head.push_str(&format!("{n}: {v}\r\n"));
                }
                head.push_str("\r\n");
                if out.write_all(head.as_bytes()).and_then(|_| out.write_all(body.as_bytes())).is_err() {
                    return;
                }
            }
            Answer::Stream(events) => {
                let head = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\n\r\n";
                if out.write_all(head.as_bytes()).is_err() {
                    return;
                }
                while let Ok(ev) = events.recv() {
                    if out.write_all(ev.as_bytes()).and_then(|_| out.flush()).is_err() {
                        return;
                    }
                }
                return;
            }
            Answer::Hold => {
                std::thread::sleep(Duration::from_secs(30));
                return;
            }
        }
    }
}

pub fn json_reply(v: Value) -> Answer {
    Answer::Reply(200, vec![("content-type", "application/json".into())], v.to_string())
}

/// A minimal MCP server's answer to a POSTed message (initialize, notifications,
/// tools/list, anything else `{}`): the reply message, or `None` for a notification.
pub fn mcp_reply(body: &str) -> Option<Value> {
    let msg: Value = serde_json::from_str(body).unwrap_or(Value::Null);
    let id = msg.get("id").cloned()?;
    let result = match msg["method"].as_str() {
        Some("initialize") => {
            json!({"protocolVersion": msg["params"]["protocolVersion"], "capabilities": {"tools": {}},
            "serverInfo": {"name": "oauth-test", "version": "1"}})
        }
        Some("tools/list") => json!({"tools": []}),
        _ => json!({}),
    };
    Some(json!({"jsonrpc": "2.0", "id": id, "result": result}))
}

/// A minimal MCP server at /mcp, POST only (initialize, notifications, tools/list).
pub fn mcp(req: &Req) -> Answer {
    if req.method != "POST" {
        return Answer::Reply(405, vec![], String::new());
    }
    match mcp_reply(&req.body) {
        Some(reply) => json_reply(reply),
        None => Answer::Reply(202, vec![], String::new()),
    }
}

/// How a [`Protected`] server behaves.
#[derive(Clone, Copy)]
pub struct Config {
    /// The token endpoint's `expires_in` (none: the client learns of expiry by a 401).
    pub expires_in: Option<u64>,
    /// How long the resource accepts token N (1-based) after it was issued.
    pub valid_for: fn(usize) -> Duration,
}

/// How a request to the resource went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seen {
    /// Accepted, carrying token number N (1-based, in the order issued).
    Token(usize),
    /// Refused: it carried no token (or one never issued).
    Missing,
    /// Refused: its token (number N) was past its validity.
    Stale(usize),
}

/// One request to the resource: method, path, the start of its body, how it went.
pub type Log = Vec<(String, String, String, Seen)>;

#[derive(Default)]
pub struct State {
    /// When each token was issued (token N is entry N - 1).
    issued: Mutex<Vec<Instant>>,
    pub log: Mutex<Log>,
    /// Legacy SSE streams by session id.
    streams: Mutex<HashMap<String, mpsc::Sender<String>>>,
}

impl State {
    /// Tokens issued so far (token endpoint requests answered).
    pub fn tokens(&self) -> usize {
        self.issued.lock().unwrap().len()
    }

    /// When each token was issued, in order.
    pub fn issued(&self) -> Vec<Instant> {
        self.issued.lock().unwrap().clone()
    }

    pub fn log(&self) -> Log {
        self.log.lock().unwrap().clone()
    }

    fn token_reply(&self, cfg: Config, req: &Req) -> Answer {
        let basic = req.header("authorization").unwrap_or("");
        if !basic.starts_with("Basic ") || !req.body.contains("grant_type=client_credentials") {
            return Answer::Reply(400, vec![], r#"{"error":"invalid_request"}"#.into());
        }
        let n = {
            let mut issued = self.issued.lock().unwrap();
            issued.push(Instant::now());
            issued.len()
        };
        let mut reply = json!({"access_token": format!("tok-{n}-{TOKEN_MARK}"), "token_type": "Bearer"});
        if let Some(e) = cfg.expires_in {
            reply["expires_in"] = json!(e);
        }
        json_reply(reply)
    }

    /// Whether `req` carries a token that is still valid; logged either way.
    fn check(&self, cfg: Config, req: &Req) -> Seen {
        let n = req
            .header("authorization")
            .and_then(|a| a.strip_prefix("Bearer tok-"))
            .and_then(|t| t.strip_suffix(&format!("-{TOKEN_MARK}")))
            .and_then(|n| n.parse::<usize>().ok());
        let issued = n.and_then(|n| self.issued.lock().unwrap().get(n.wrapping_sub(1)).copied());
        let seen = match (n, issued) {
            (Some(n), Some(at)) if at.elapsed() < (cfg.valid_for)(n) => Seen::Token(n),
            (Some(n), Some(_)) => Seen::Stale(n),
            _ => Seen::Missing,
        };
        let body: String = req.body.chars().take(80).collect();
        self.log.lock().unwrap().push((req.method.clone(), req.path.clone(), body, seen.clone()));
        seen
    }

    fn resource(&self, req: &Req, base: &str) -> Answer {
        match (req.method.as_str(), req.path.split('?').next().unwrap_or("")) {
            ("GET", "/mcp") => {
                let note = json!({"jsonrpc": "2.0", "method": "notifications/tools/list_changed"});
                let body = format!("retry: 200\ndata: {note}\n\n");
                Answer::Reply(200, vec![("content-type", "text/event-stream".into())], body)
            }
            ("DELETE", "/mcp") => Answer::Reply(200, vec![], String::new()),
            ("POST", "/mcp") => match mcp_reply(&req.body) {
                Some(reply) => {
                    let mut a = json_reply(reply);
                    if let Answer::Reply(_, h, _) = &mut a {
                        if req.body.contains("\"initialize\"") {
                            h.push(("mcp-session-id", "s-1".into()));
                        }
                    }
                    a
                }
                None => Answer::Reply(202, vec![], String::new()),
            },
            ("GET", "/sse") => {
                let (tx, rx) = mpsc::channel();
                let mut streams = self.streams.lock().unwrap();
                let sid = format!("{}", streams.len() + 1);
                let _ = tx.send(format!("event: endpoint\ndata: {base}/message?sid={sid}\n\n"));
                streams.insert(sid, tx);
                Answer::Stream(rx)
            }
            ("POST", "/message") => {
                let sid = req.path.split("sid=").nth(1).unwrap_or("");
                if let (Some(reply), Some(tx)) = (mcp_reply(&req.body), self.streams.lock().unwrap().get(sid)) {
                    let _ = tx.send(format!("event: message\ndata: {reply}\n\n"));
                }
                Answer::Reply(202, vec![], "Accepted".into())
            }
            _ => Answer::Reply(404, vec![], "not found".into()),
        }
    }
}

/// A protected MCP server and its authorization server on one loopback port.
pub struct Protected {
    pub port: u16,
    pub state: Arc<State>,
}

impl Protected {
    pub fn start(cfg: Config) -> Protected {
        let state = Arc::new(State::default());
        let s = state.clone();
        let port = serve(move |req, port| {
            let base = format!("http://127.0.0.1:{port}");
            let path = req.path.as_str();
            if path.starts_with("/.well-known/oauth-protected-resource") {
                return json_reply(json!({"resource": base, "authorization_servers": [base]}));
            }
            if path == "/.well-known/oauth-authorization-server" {
                return json_reply(json!({
                    "issuer": base, "token_endpoint": format!("{base}/token"),
                    "grant_types_supported": ["client_credentials"],
                    "token_endpoint_auth_methods_supported": ["client_secret_basic"],
                }));
            }
            if path == "/token" {
                return s.token_reply(cfg, req);
            }
            let seen = s.check(cfg, req);
            if !matches!(seen, Seen::Token(_)) {
                let prm = format!("{base}/.well-known/oauth-protected-resource{}", path.split('?').next().unwrap());
                let mut challenge = format!(r#"Bearer resource_metadata="{prm}""#);
                if matches!(seen, Seen::Stale(_)) {
                    challenge.push_str(r#", error="invalid_token""#);
                }
                return Answer::Reply(401, vec![("www-authenticate", challenge)], String::new());
            }
            s.resource(req, &base)
        });
        Protected { port, state }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }
}

/// The `--oauth` options of a client-credentials run (the secret comes from the
/// environment: `MCPSCRIPT_OAUTH_CLIENT_SECRET`).
pub const CC: [&str; 5] = ["--oauth", "--oauth-client-id", "cid", "--oauth-grant", "client_credentials"];

/// Fails when stdout, stderr or any file under `out` shows an access token or the client
/// secret.
pub fn assert_no_secrets(stdout: &str, stderr: &str, out: &Path) {
    let mut outputs = vec![("stdout".to_string(), stdout.to_string()), ("stderr".to_string(), stderr.to_string())];
    let mut stack = vec![out.to_path_buf()];
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
        assert!(!text.contains(TOKEN_MARK), "{name} shows an access token");
        assert!(!text.contains(CLIENT_SECRET), "{name} shows the client secret");
    }
}
