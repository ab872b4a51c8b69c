//! The stateless revision (2026-07-28) of `mcpscript serve`, end to end against a real
//! child process: over Streamable HTTP, `server/discover` and calls with no session, every
//! rung of the request ladder with its code and HTTP status, the removed methods,
//! notifications, GET and DELETE, a missing resource, a fixture that would need a
//! back-channel, the elicitation fixture's `input_required` round trip, progress and log
//! notifications on the POST's event stream; a sessionful
//! client on the same server at the same time; tcp connections in each era, a WebSocket
//! one; `--workers`; `--auth-token`. 127.0.0.1 only; each child is started here and killed by its handle.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::HeaderMap;
use hyper_util::rt::TokioIo;
use mcpscript::protocol::stateless::{self, meta, VERSION};
use serde_json::{json, Value};
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::net::tcp::OwnedReadHalf;
use tokio::net::TcpStream;
use tokio::process::{Child, Command};

const BIN: &str = env!("CARGO_BIN_EXE_mcpscript");
const WAIT: Duration = Duration::from_secs(10);

/// A `mcpscript serve` child with an http:// and a tcp:// listener; killed on drop.
struct Serve {
    _child: Child,
    /// `127.0.0.1:PORT` of the HTTP listener (MCP path `/mcp`).
    http: String,
    /// `127.0.0.1:PORT` of the tcp listener.
    tcp: String,
}

async fn serve(extra: &[&str]) -> Serve {
    let mut child = Command::new(BIN)
        .args(["serve", "--listen", "http://127.0.0.1:0/mcp", "--listen", "tcp://127.0.0.1:0"])
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("mcpscript serve starts");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let (mut http, mut tcp) = (None, None);
    tokio::time::timeout(WAIT, async {
        while http.is_none() || tcp.is_none() {
            let line = lines.next_line().await.unwrap().expect("serve ended before listening");
            if let Some(url) = line.strip_prefix("listening http://") {
                http = Some(url.trim().trim_end_matches("/mcp").to_string());
            } else if let Some(url) = line.strip_prefix("listening tcp://") {
                tcp = Some(url.trim().to_string());
            }
        }
    })
    .await
    .expect("serve listens within 10 s");
    Serve { _child: child, http: http.unwrap(), tcp: tcp.unwrap() }
}

struct Reply {
    status: u16,
    headers: HeaderMap,
    body: String,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }

    fn content_type(&self) -> &str {
        self.headers.get("content-type").map_or("", |v| v.to_str().unwrap())
    }

    /// The messages of an event-stream body, in order.
    fn events(&self) -> Vec<Value> {
        self.body.lines().filter_map(|l| l.strip_prefix("data: ")).map(|d| serde_json::from_str(d).unwrap()).collect()
    }

    /// The error of a JSON body: (HTTP status, code).
    fn error(&self) -> (u16, i64) {
        let v = self.json();
        (self.status, v["error"]["code"].as_i64().unwrap_or_else(|| panic!("not an error: {v}")))
    }
}

/// One HTTP/1.1 request on a fresh connection; `headers` may repeat a name.
async fn http(addr: &str, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> Reply {
    let stream = TcpStream::connect(addr).await.unwrap();
    let (mut tx, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.unwrap();
    tokio::spawn(conn);
    let mut req = hyper::Request::builder().method(method).uri(path).header("host", addr);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = tx.send_request(req.body(Full::new(Bytes::from(body.to_string()))).unwrap()).await.unwrap();
    let (status, headers) = (resp.status().as_u16(), resp.headers().clone());
    let body = tokio::time::timeout(WAIT, resp.into_body().collect()).await.unwrap().unwrap().to_bytes();
    Reply { status, headers, body: String::from_utf8_lossy(&body).into_owned() }
}

/// A stateless request: `params` with the envelope (no capabilities unless given) in `_meta`.
fn request(id: u64, method: &str, params: Value) -> Value {
    request_with(id, method, params, json!({}))
}

fn request_with(id: u64, method: &str, params: Value, capabilities: Value) -> Value {
    let env = stateless::envelope(VERSION, &capabilities, "stateless-test", "1.0");
    json!({"jsonrpc": "2.0", "id": id, "method": method, "params": stateless::stamp(Some(params), &env)})
}

/// The headers the official client sends with `req`: the revision, the method and, for
/// `tools/call`, `prompts/get` and `resources/read`, the name.
fn headers_for(req: &Value) -> Vec<(String, String)> {
    let method = req["method"].as_str().unwrap();
    let mut h = vec![
        ("content-type".into(), "application/json".into()),
        ("accept".into(), "application/json, text/event-stream".into()),
        ("mcp-protocol-version".into(), VERSION.into()),
        ("mcp-method".into(), method.into()),
    ];
    if let Some(name) = stateless::name_of(method, req.get("params")) {
        h.push(("mcp-name".into(), stateless::header_value(name)));
    }
    h
}

/// POSTs `req` with [`headers_for`] it, changed by `edit`.
async fn post_with(addr: &str, req: &Value, edit: impl FnOnce(&mut Vec<(String, String)>)) -> Reply {
    let mut h = headers_for(req);
    edit(&mut h);
    let h: Vec<(&str, &str)> = h.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    http(addr, "POST", "/mcp", &h, &req.to_string()).await
}

async fn post(addr: &str, req: &Value) -> Reply {
    post_with(addr, req, |_| {}).await
}

fn set(h: &mut Vec<(String, String)>, name: &str, value: &str) {
    h.retain(|(k, _)| k != name);
    h.push((name.into(), value.into()));
}

async fn stats(addr: &str) -> Value {
    http(addr, "GET", "/stats", &[], "").await.json()
}

/// What every stateless result carries.
fn assert_stamped(result: &Value, cacheable: bool) {
    assert_eq!(result["resultType"], "complete", "{result}");
    assert_eq!(result["_meta"][meta::SERVER_INFO]["name"], "mcpscript", "{result}");
    assert!(result["_meta"][meta::SERVER_INFO]["version"].is_string(), "{result}");
    if cacheable {
        assert_eq!((result["ttlMs"].clone(), result["cacheScope"].clone()), (json!(0), json!("private")), "{result}");
    } else {
        assert!(result.get("ttlMs").is_none(), "{result}");
    }
}

#[tokio::test]
async fn discover_and_calls_need_no_session() {
    let s = serve(&[]).await;
    let r = post(&s.http, &request(1, "server/discover", json!({}))).await;
    assert_eq!((r.status, r.content_type()), (200, "application/json"), "{}", r.body);
    assert!(r.headers.get("mcp-session-id").is_none());
    let d = &r.json()["result"];
    assert_eq!(d["supportedVersions"], json!([VERSION]));
    assert_eq!(d["capabilities"]["tools"], json!({"listChanged": false}));
    assert!(d["instructions"].as_str().unwrap().contains("echo"));
    assert!(d.get("serverInfo").is_none() && d.get("protocolVersion").is_none(), "{d}");
    assert_stamped(d, true);

    // An incoming session id is ignored, and none is set.
    let call = request(2, "tools/call", json!({"name": "echo", "arguments": {"message": "hi"}}));
    let r = post_with(&s.http, &call, |h| set(h, "mcp-session-id", "0123456789abcdef0123456789abcdef")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.headers.get("mcp-session-id").is_none());
    let result = &r.json()["result"];
    assert_eq!(result["content"][0]["text"], "Echo: hi");
    assert_stamped(result, false);

    let r = post(&s.http, &request(3, "tools/list", json!({}))).await;
    let tools = &r.json()["result"];
    assert!(tools["tools"].as_array().unwrap().iter().any(|t| t["name"] == "echo"));
    assert_stamped(tools, true);
    let r = post(&s.http, &request(4, "resources/read", json!({"uri": "mcpscript://readme"}))).await;
    let read = &r.json()["result"];
    assert!(read["contents"][0]["text"].as_str().unwrap().contains("reference server"));
    assert_stamped(read, true);
    let r = post(&s.http, &request(5, "prompts/get", json!({"name": "greeting", "arguments": {"name": "Ada"}}))).await;
    let prompt = &r.json()["result"];
    assert!(prompt["messages"][0]["content"]["text"].as_str().unwrap().contains("Ada"));
    assert_stamped(prompt, false);
    let complete =
        json!({"ref": {"type": "ref/prompt", "name": "greeting"}, "argument": {"name": "name", "value": "A"}});
    let r = post(&s.http, &request(6, "completion/complete", complete)).await;
    assert_eq!(r.json()["result"]["completion"]["values"], json!(["Ada", "Alan"]));

    // No session was made, and no connection stays counted.
    let st = stats(&s.http).await;
    assert_eq!((st["sessions_initialized"].clone(), st["connections_total"].clone()), (json!(0), json!(0)), "{st}");
    assert_eq!((st["requests"].clone(), st["responses_ok"].clone()), (json!(6), json!(6)), "{st}");
}

#[tokio::test]
async fn every_rung_of_the_ladder_answers_with_its_code_and_status() {
    let s = serve(&[]).await;
    let call = request(1, "tools/call", json!({"name": "echo", "arguments": {"message": "x"}}));
    let bare = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "echo"}});

    // The envelope first: without `_meta`, -32602, even with an unknown revision header.
    assert_eq!(post(&s.http, &bare).await.error(), (400, -32602));
    assert_eq!(
        post_with(&s.http, &bare, |h| set(h, "mcp-protocol-version", "2099-01-01")).await.error(),
        (400, -32602)
    );
    let half = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list",
        "params": {"_meta": {meta::PROTOCOL_VERSION: VERSION}}});
    let r = post(&s.http, &half).await;
    assert_eq!(r.error(), (400, -32602));
    assert!(r.json()["error"]["message"].as_str().unwrap().contains(meta::CLIENT_CAPABILITIES), "{}", r.body);

    // Then the headers against the body: -32020.
    let mismatch = |r: Reply, header: &str| {
        assert_eq!(r.error(), (400, stateless::codes::HEADER_MISMATCH), "{}", r.body);
        assert!(r.json()["error"]["message"].as_str().unwrap().starts_with(header), "{}", r.body);
    };
    mismatch(post_with(&s.http, &call, |h| set(h, "mcp-method", "tools/list")).await, "mcp-method");
    mismatch(post_with(&s.http, &call, |h| h.retain(|(k, _)| k != "mcp-method")).await, "mcp-method");
    mismatch(post_with(&s.http, &call, |h| h.retain(|(k, _)| k != "mcp-name")).await, "mcp-name");
    mismatch(post_with(&s.http, &call, |h| set(h, "mcp-name", "add")).await, "mcp-name");
    let read = request(2, "resources/read", json!({"uri": "mcpscript://readme"}));
    mismatch(post_with(&s.http, &read, |h| set(h, "mcp-name", "mcpscript://stats")).await, "mcp-name");
    mismatch(post_with(&s.http, &call, |h| h.push(("mcp-method".into(), "tools/call".into()))).await, "mcp-method");
    // The header names 2026-07-28, the envelope another revision.
    let mut other = call.clone();
    other["params"]["_meta"][meta::PROTOCOL_VERSION] = json!("2099-01-01");
    mismatch(post(&s.http, &other).await, "mcp-protocol-version");

    // Then the revision: -32022, naming what is spoken.
    let r = post_with(&s.http, &other, |h| set(h, "mcp-protocol-version", "2099-01-01")).await;
    assert_eq!(r.error(), (400, stateless::codes::UNSUPPORTED_VERSION));
    assert_eq!(r.json()["error"]["data"], json!({"supported": [VERSION], "requested": "2099-01-01"}));
    assert_eq!(stateless::supported_in(r.json()["error"].get("data")), vec![VERSION.to_string()]);

    // Removed methods and unknown ones: -32601, 404.
    for method in ["ping", "initialize", "logging/setLevel", "resources/subscribe", "resources/unsubscribe"] {
        let r = post(&s.http, &request(3, method, json!({"uri": "mcpscript://readme", "level": "info"}))).await;
        assert_eq!(r.error(), (404, -32601), "{method}: {}", r.body);
        assert_eq!(r.json()["error"]["data"], method);
    }
    assert_eq!(post(&s.http, &request(4, "no/such/method", json!({}))).await.error(), (404, -32601));

    // A missing resource: -32602 with the uri.
    let r = post(&s.http, &request(5, "resources/read", json!({"uri": "test://nope"}))).await;
    assert_eq!(r.error(), (400, -32602));
    assert_eq!(r.json()["error"]["data"], json!({"uri": "test://nope"}));

    // A notification is acknowledged; a batch, a response and bad JSON are refused.
    let note = json!({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 1}});
    let r = post_with(&s.http, &note, |h| set(h, "mcp-method", "notifications/cancelled")).await;
    assert_eq!((r.status, r.body.as_str()), (202, ""));
    let h = headers_for(&call);
    let h: Vec<(&str, &str)> = h.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let r = http(&s.http, "POST", "/mcp", &h, &format!("[{call}]")).await;
    assert_eq!(r.error(), (400, -32600));
    let r = http(&s.http, "POST", "/mcp", &h, r#"{"jsonrpc":"2.0","id":9,"result":{}}"#).await;
    assert_eq!(r.error(), (400, -32600));
    assert_eq!(http(&s.http, "POST", "/mcp", &h, "{not json").await.error(), (400, -32700));

    // GET and DELETE have nothing to do in this era.
    for method in ["GET", "DELETE"] {
        let r = http(&s.http, method, "/mcp", &[("mcp-protocol-version", VERSION)], "").await;
        assert_eq!((r.status, r.headers["allow"].to_str().unwrap()), (405, "POST"), "{method}");
    }
}

#[tokio::test]
async fn calls_that_talk_to_the_client() {
    let s = serve(&[]).await;
    // No back-channel: a fixture that sends the client a request fails cleanly.
    let sampling = request_with(
        1,
        "tools/call",
        json!({"name": "test_sampling", "arguments": {"prompt": "hi"}}),
        json!({"sampling": {}}),
    );
    let r = post(&s.http, &sampling).await;
    assert_eq!(r.error(), (400, -32600), "{}", r.body);
    let message = r.json()["error"]["message"].as_str().unwrap().to_string();
    assert!(message.contains("'sampling/createMessage'") && message.contains("no back-channel"), "{message}");

    // The elicitation fixtures ask through an input_required result instead; the client
    // answers by sending the request again with inputResponses.
    let params = json!({"name": "test_elicitation", "arguments": {"message": "Who?"}});
    let r = post(&s.http, &request(2, "tools/call", params.clone())).await;
    assert_eq!(r.error(), (400, stateless::codes::MISSING_CAPABILITY), "no elicitation capability: {}", r.body);
    assert_eq!(r.json()["error"]["data"], json!({"requiredCapabilities": {"elicitation": {}}}));
    let asking = request_with(2, "tools/call", params, json!({"elicitation": {}}));
    let r = post(&s.http, &asking).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let result = &r.json()["result"];
    assert_eq!(result["resultType"], "input_required", "{result}");
    assert_eq!(result["_meta"][meta::SERVER_INFO]["name"], "mcpscript");
    let question = &result["inputRequests"]["elicitation/create"];
    assert_eq!(
        (question["method"].as_str(), question["params"]["message"].as_str()),
        (Some("elicitation/create"), Some("Who?"))
    );
    assert!(question["params"]["requestedSchema"]["properties"]["username"].is_object(), "{question}");
    let mut answered = asking.clone();
    answered["id"] = json!(3);
    answered["params"]["inputResponses"] =
        json!({"elicitation/create": {"action": "accept", "content": {"username": "ada", "email": "a@x"}}});
    let r = post(&s.http, &answered).await;
    let result = &r.json()["result"];
    assert_eq!(
        result["content"][0]["text"],
        r#"User response: action=accept, content={"email":"a@x","username":"ada"}"#
    );
    assert_stamped(result, false);

    // Progress with a token: the notifications, then the reply, on the POST's event stream.
    let mut progress = request(3, "tools/call", json!({"name": "test_tool_with_progress"}));
    progress["params"]["_meta"]["progressToken"] = json!("p1");
    let r = post(&s.http, &progress).await;
    assert_eq!((r.status, r.content_type()), (200, "text/event-stream"), "{}", r.body);
    let events = r.events();
    assert_eq!(events.len(), 4, "{}", r.body);
    assert!(events[..3]
        .iter()
        .all(|e| e["method"] == "notifications/progress" && e["params"]["progressToken"] == "p1"));
    assert_eq!(events[3]["id"], 3);
    assert_stamped(&events[3]["result"], false);
    // A client that takes JSON only gets the reply alone.
    let r = post_with(&s.http, &progress, |h| set(h, "accept", "application/json")).await;
    assert_eq!((r.status, r.content_type()), (200, "application/json"), "{}", r.body);

    // Log messages only for a request that opts in, at its level.
    let logging = request(4, "tools/call", json!({"name": "test_tool_with_logging"}));
    let r = post(&s.http, &logging).await;
    assert_eq!(r.content_type(), "application/json", "no opt-in, no log: {}", r.body);
    assert_stamped(&r.json()["result"], false);
    let mut opted = logging.clone();
    opted["params"]["_meta"][meta::LOG_LEVEL] = json!("info");
    let r = post(&s.http, &opted).await;
    let events = r.events();
    assert_eq!(r.content_type(), "text/event-stream");
    assert_eq!(events.iter().filter(|e| e["method"] == "notifications/message").count(), 3, "{}", r.body);
    opted["params"]["_meta"][meta::LOG_LEVEL] = json!("error");
    assert_eq!(post(&s.http, &opted).await.content_type(), "application/json", "above the tool's level");

    // Subscriptions are gone with resources/subscribe: nothing is announced.
    let caps = &post(&s.http, &request(5, "server/discover", json!({}))).await.json()["result"]["capabilities"];
    assert_eq!(caps["resources"]["subscribe"], false);
    let st = stats(&s.http).await;
    assert_eq!(st["responses_error"], 2, "{st}");
}

#[tokio::test]
async fn a_sessionful_client_is_served_at_the_same_time() {
    let s = serve(&[]).await;
    let json_headers = [("content-type", "application/json"), ("accept", "application/json, text/event-stream")];
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-11-25",
        "capabilities": {}, "clientInfo": {"name": "sessionful", "version": "1"}}});
    let r = http(&s.http, "POST", "/mcp", &json_headers, &init.to_string()).await;
    assert_eq!(r.json()["result"]["protocolVersion"], "2025-11-25");
    assert_eq!(r.json()["result"]["capabilities"]["resources"]["subscribe"], true);
    let id = r.headers["mcp-session-id"].to_str().unwrap().to_string();
    let in_session =
        [json_headers[0], json_headers[1], ("mcp-session-id", &id), ("mcp-protocol-version", "2025-11-25")];
    let note = r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#;
    assert_eq!(http(&s.http, "POST", "/mcp", &in_session, note).await.status, 202);

    // Interleaved: the session's calls and stateless ones, concurrently.
    let sessionful = async {
        for i in 0..5 {
            let call = json!({"jsonrpc": "2.0", "id": 10 + i, "method": "tools/call",
                "params": {"name": "echo", "arguments": {"message": format!("s{i}")}}});
            let r = http(&s.http, "POST", "/mcp", &in_session, &call.to_string()).await;
            let result = &r.json()["result"];
            assert_eq!(result["content"][0]["text"], format!("Echo: s{i}"));
            assert!(result.get("resultType").is_none(), "the handshake era is not stamped: {result}");
        }
    };
    let stateless = async {
        for i in 0..5 {
            let call =
                request(20 + i, "tools/call", json!({"name": "echo", "arguments": {"message": format!("t{i}")}}));
            let r = post(&s.http, &call).await;
            assert_eq!(r.json()["result"]["content"][0]["text"], format!("Echo: t{i}"));
        }
    };
    tokio::join!(sessionful, stateless);

    // In the session, server/discover does not exist and the envelope is refused.
    let discover = json!({"jsonrpc": "2.0", "id": 30, "method": "server/discover", "params": {}});
    let r = http(&s.http, "POST", "/mcp", &in_session, &discover.to_string()).await;
    assert_eq!(r.json()["error"]["code"], -32601);
    let enveloped = request(31, "tools/list", json!({}));
    let r = http(&s.http, "POST", "/mcp", &in_session, &enveloped.to_string()).await;
    assert_eq!(r.json()["error"]["code"], -32600);
    assert!(r.json()["error"]["message"].as_str().unwrap().contains("handshake protocol era"), "{}", r.body);

    // One session, one connection counted: the stateless requests are neither.
    let st = stats(&s.http).await;
    assert_eq!((st["sessions_initialized"].clone(), st["connections_total"].clone()), (json!(1), json!(1)), "{st}");
    assert_eq!(st["requests"], 13, "{st}");
}

/// A newline-delimited JSON-RPC connection.
struct Line {
    read: Lines<BufReader<OwnedReadHalf>>,
    write: tokio::net::tcp::OwnedWriteHalf,
}

impl Line {
    async fn connect(addr: &str) -> Line {
        let (r, w) = TcpStream::connect(addr).await.unwrap().into_split();
        Line { read: BufReader::new(r).lines(), write: w }
    }

    async fn recv(&mut self) -> Value {
        let line = tokio::time::timeout(WAIT, self.read.next_line()).await.unwrap().unwrap().expect("a line");
        serde_json::from_str(&line).unwrap()
    }

    async fn ask(&mut self, msg: &Value) -> Value {
        self.write.write_all(format!("{msg}\n").as_bytes()).await.unwrap();
        self.recv().await
    }
}

#[tokio::test]
async fn tcp_connections_keep_the_era_their_first_request_opens() {
    let s = serve(&[]).await;
    let mut c = Line::connect(&s.tcp).await;
    let list = c.ask(&request(1, "tools/list", json!({}))).await;
    assert_stamped(&list["result"], true);
    let echo = c.ask(&request(2, "tools/call", json!({"name": "echo", "arguments": {"message": "tcp"}}))).await;
    assert_eq!(echo["result"]["content"][0]["text"], "Echo: tcp");
    assert_stamped(&echo["result"], false);

    // Its notifications go on the connection before the reply.
    let mut progress = request(3, "tools/call", json!({"name": "test_tool_with_progress"}));
    progress["params"]["_meta"]["progressToken"] = json!(7);
    let first = c.ask(&progress).await;
    let rest = [c.recv().await, c.recv().await, c.recv().await];
    assert_eq!(
        (first["method"].clone(), first["params"]["progressToken"].clone()),
        (json!("notifications/progress"), json!(7))
    );
    assert_eq!(rest[2]["id"], 3, "{rest:?}");
    let sampling = request_with(
        4,
        "tools/call",
        json!({"name": "test_sampling", "arguments": {"prompt": "hi"}}),
        json!({"sampling": {}}),
    );
    let r = c.ask(&sampling).await;
    assert_eq!(r["error"]["code"], -32600, "{r}");

    // initialize does not exist here; every request carries its envelope.
    let init = json!({"jsonrpc": "2.0", "id": 5, "method": "initialize", "params": {"protocolVersion": "2025-11-25",
        "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}});
    let r = c.ask(&init).await;
    assert_eq!(r["error"]["code"], stateless::codes::UNSUPPORTED_VERSION);
    assert_eq!(
        r["error"]["message"],
        "connection is serving the 2026-07-28 protocol; the initialize handshake is not accepted"
    );
    assert_eq!(r["error"]["data"], json!({"supported": [VERSION], "requested": "2025-11-25"}));
    let r = c.ask(&request(6, "ping", json!({}))).await;
    assert_eq!((r["error"]["code"].clone(), r["error"]["data"].clone()), (json!(-32601), json!("ping")));
    let r = c.ask(&json!({"jsonrpc": "2.0", "id": 7, "method": "tools/list"})).await;
    assert_eq!(r["error"]["code"], -32602);
    let mut future = request(8, "tools/list", json!({}));
    future["params"]["_meta"][meta::PROTOCOL_VERSION] = json!("2099-01-01");
    assert_eq!(c.ask(&future).await["error"]["code"], stateless::codes::UNSUPPORTED_VERSION);
    let r = c.ask(&request(9, "resources/read", json!({"uri": "test://nope"}))).await;
    assert_eq!(
        (r["error"]["code"].clone(), r["error"]["data"].clone()),
        (json!(-32602), json!({"uri": "test://nope"}))
    );

    // A connection opened by initialize stays in the handshake era.
    let mut h = Line::connect(&s.tcp).await;
    assert_eq!(h.ask(&init).await["result"]["protocolVersion"], "2025-11-25");
    let r = h.ask(&request(2, "tools/list", json!({}))).await;
    assert_eq!(r["error"]["code"], -32600, "{r}");
    assert!(r["error"]["message"].as_str().unwrap().contains("handshake protocol era"));
    assert_eq!(h.ask(&json!({"jsonrpc": "2.0", "id": 3, "method": "ping"})).await["result"], json!({}));

    let st = stats(&s.http).await;
    assert_eq!(
        (st["connections_open"].clone(), st["connections_total"].clone(), st["sessions_initialized"].clone()),
        (json!(2), json!(2), json!(1)),
        "{st}"
    );
    drop((c, h));
}

#[tokio::test]
async fn any_worker_serves_a_stateless_request() {
    let s = serve(&["--workers", "2"]).await;
    for i in 0..12 {
        // Fresh connections, so SO_REUSEPORT spreads them over both workers.
        let call = request(i, "tools/call", json!({"name": "echo", "arguments": {"message": format!("w{i}")}}));
        let r = post(&s.http, &call).await;
        assert_eq!(r.json()["result"]["content"][0]["text"], format!("Echo: w{i}"), "{}", r.body);
    }
}

#[tokio::test]
async fn the_auth_token_is_the_bearer_header() {
    let s = serve(&["--auth-token", "s3cret"]).await;
    let call = request(1, "tools/call", json!({"name": "echo", "arguments": {"message": "a"}}));
    assert_eq!(post(&s.http, &call).await.status, 401);
    let r = post_with(&s.http, &call, |h| set(h, "authorization", "Bearer s3cret")).await;
    assert_eq!(r.json()["result"]["content"][0]["text"], "Echo: a");
    // On tcp the token travels in initialize, which this era has not.
    let mut c = Line::connect(&s.tcp).await;
    assert_eq!(c.ask(&call).await["error"]["code"], mcpscript::protocol::mcp::codes::UNAUTHORIZED);
}

#[tokio::test]
async fn a_websocket_connection_in_the_stateless_era() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::client::ClientRequestBuilder;
    use tokio_tungstenite::tungstenite::Message;
    let s = serve(&[]).await;
    let uri: hyper::Uri = format!("ws://{}/mcp", s.http).parse().unwrap();
    let stream = TcpStream::connect(&s.http).await.unwrap();
    let upgrade = ClientRequestBuilder::new(uri).with_sub_protocol("mcp");
    let (mut ws, _) = tokio_tungstenite::client_async(upgrade, stream).await.unwrap();
    let mut ask = async |msg: Value| -> Value {
        ws.send(Message::text(msg.to_string())).await.unwrap();
        loop {
            match tokio::time::timeout(WAIT, ws.next()).await.unwrap().unwrap().unwrap() {
                Message::Text(t) => return serde_json::from_str(t.as_str()).unwrap(),
                _ => continue,
            }
        }
    };
    let echo = ask(request(1, "tools/call", json!({"name": "echo", "arguments": {"message": "ws"}}))).await;
    assert_eq!(echo["result"]["content"][0]["text"], "Echo: ws");
    assert_stamped(&echo["result"], false);
    let init = json!({"jsonrpc": "2.0", "id": 2, "method": "initialize", "params": {"protocolVersion": "2025-11-25",
        "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}});
    assert_eq!(ask(init).await["error"]["code"], stateless::codes::UNSUPPORTED_VERSION);
}
