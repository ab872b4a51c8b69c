//! Extra headers and the bearer token: what goes on the wire, what a 401 becomes, and that
//! a bad header is an input error (exit 2) naming it. The server here is a bare TCP
//! listener that records each request's head and answers with a canned response.

mod common;

use mcpscript::client::{ClientError, ClientOptions, Session};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const BIN: &str = env!("CARGO_BIN_EXE_mcpscript");

/// Serves every connection with `response`, recording the request heads (lower-cased).
async fn recording_server(response: &'static str) -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/mcp", listener.local_addr().unwrap());
    let heads = Arc::new(Mutex::new(Vec::new()));
    let seen = heads.clone();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let seen = seen.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    match sock.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                seen.lock().unwrap().push(String::from_utf8_lossy(&buf).to_lowercase());
                let _ = sock.write_all(response.as_bytes()).await;
            });
        }
    });
    (url, heads)
}

#[tokio::test]
async fn sends_the_bearer_and_headers_and_surfaces_a_401_with_its_challenge() {
    let (url, heads) = recording_server(
        "HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Bearer resource_metadata=\"http://127.0.0.1/prm\"\r\n\
         Content-Length: 0\r\nConnection: close\r\n\r\n",
    )
    .await;
    let opts = Arc::new(ClientOptions {
        auth_token: Some("s3cret-token".into()),
        headers: vec![("X-Trace".into(), "abc 1".into())],
        connect_timeout: Duration::from_secs(5),
        ..ClientOptions::default()
    });
    let err = Session::connect(&url.parse().unwrap(), opts.clone()).await.err().expect("a 401 fails the connect");
    let text = err.to_string();
    assert!(text.contains("401") && text.contains("resource_metadata"), "{text}");
    assert!(!text.contains("s3cret"), "{text}");
    let head = heads.lock().unwrap().first().cloned().expect("the server saw the initialize POST");
    assert!(head.contains("authorization: bearer s3cret-token\r\n"), "{head}");
    assert!(head.contains("x-trace: abc 1\r\n"), "{head}");
    // Over HTTP the token travels in the header only, not in the initialize params.
    assert!(!head.contains("authtoken"), "{head}");
    assert!(!format!("{opts:?}").contains("s3cret"), "Debug output shows the token");
}

#[tokio::test]
async fn a_401_on_a_request_is_an_unauthorized_error() {
    let (url, _) = recording_server(
        "HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Bearer error=\"invalid_token\"\r\nContent-Length: 0\r\n\r\n",
    )
    .await;
    let opts = Arc::new(ClientOptions::default());
    let s = Session::connect_uninitialized(&url.parse().unwrap(), opts).await.unwrap();
    match s.ping().await {
        Err(ClientError::Unauthorized { status: 401, www_authenticate, .. }) => {
            assert_eq!(www_authenticate, "Bearer error=\"invalid_token\"")
        }
        other => panic!("expected Unauthorized, got {other:?}"),
    }
}

#[test]
fn a_bad_header_is_an_input_error_naming_it() {
    for (header, named) in [("X Bad: v", "'X Bad'"), ("NoColon", "NoColon"), ("Host: x", "'Host'")] {
        let out = Command::new(BIN).args(["call", "builtin", "ping", "--header", header]).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{header}: {stderr}");
        assert!(stderr.contains("--header") && stderr.contains(named), "{header}: {stderr}");
    }
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .args(["run", "scripts/error_handling.rhai", "--header", "Bad Name: v", "--out"])
        .arg(dir.path())
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("'Bad Name'"), "{stderr}");
    assert!(stdout.is_empty(), "nothing runs with a bad header: {stdout}");
}
