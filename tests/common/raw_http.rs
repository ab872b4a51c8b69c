//! Raw HTTP/1.1 messages read off a socket, one at a time: its head and then
//! `Content-Length` bytes of body. The request side serves the tiny HTTP/1.1 servers some
//! tests write to control every byte a client gets; the response side, tests that speak
//! to a server byte by byte.

use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

/// One request as it came.
pub struct RawRequest {
    /// `POST`, `GET`, `DELETE`, ...
    pub method: String,
    /// Header names lowercased, values trimmed, in order.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl RawRequest {
    /// The first value of header `name` (lowercase).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

/// One response as it came.
pub struct RawResponse {
    pub status: u16,
    /// Header names lowercased, values trimmed, in order.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// Reads the next request on `sock`; `buf` keeps what was read beyond it. `None` once the
/// connection ends or fails.
pub async fn read_request(sock: &mut TcpStream, buf: &mut Vec<u8>) -> Option<RawRequest> {
    let (start, headers, body) = read_message(sock, buf).await?;
    let method = start.split(' ').next().unwrap_or("").to_string();
    Some(RawRequest { method, headers, body })
}

/// Reads the next response on `sock` (one with a `Content-Length`, or none for no body);
/// `buf` keeps what was read beyond it. `None` once the connection ends or fails.
pub async fn read_response(sock: &mut TcpStream, buf: &mut Vec<u8>) -> Option<RawResponse> {
    let (start, headers, body) = read_message(sock, buf).await?;
    let status = start.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    Some(RawResponse { status, headers, body })
}

/// The start line, headers and body of the next message on `sock`.
async fn read_message(sock: &mut TcpStream, buf: &mut Vec<u8>) -> Option<(String, Vec<(String, String)>, Vec<u8>)> {
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        fill(sock, buf).await?;
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let mut lines = head.split("\r\n");
    let start = lines.next().unwrap_or("").to_string();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let len: usize = headers.iter().find(|(n, _)| n == "content-length").and_then(|(_, v)| v.parse().ok()).unwrap_or(0);
    while buf.len() < head_end + len {
        fill(sock, buf).await?;
    }
    let body = buf[head_end..head_end + len].to_vec();
    buf.drain(..head_end + len);
    Some((start, headers, body))
}

async fn fill(sock: &mut TcpStream, buf: &mut Vec<u8>) -> Option<()> {
    let mut chunk = [0u8; 4096];
    match sock.read(&mut chunk).await {
        Ok(0) | Err(_) => None,
        Ok(n) => {
            buf.extend_from_slice(&chunk[..n]);
            Some(())
        }
    }
}
