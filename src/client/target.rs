//! Target URLs: what a session connects to, the transport chosen by the scheme.

use std::fmt;
use std::str::FromStr;

/// A system under test.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// `http://host:port/path` (or `https://`): Streamable HTTP.
    Http { url: String },
    /// `sse+http://host:port/sse` (or `sse+https://`): legacy HTTP+SSE; `url` is the
    /// `http://` (`https://`) stream URL.
    LegacySse { url: String },
    /// `ws://host:port/path` (or `wss://`): WebSocket, subprotocol `mcp`.
    Ws { url: String },
    /// `tcp://host:port`: newline-delimited JSON-RPC.
    Tcp { host: String, port: u16 },
    /// `stdio:COMMAND ARGS`: a spawned server speaking newline-delimited JSON-RPC.
    Stdio { command: String, args: Vec<String> },
    /// `builtin`: mcpscript's own reference server, started for the run.
    Builtin,
}

/// A target string that could not be understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid target '{input}': {reason}")]
pub struct TargetError {
    pub input: String,
    pub reason: String,
}

const EXPECTED: &str = "expected http://HOST:PORT/PATH, sse+http://HOST:PORT/sse, ws://HOST:PORT/PATH (https://, sse+https://, wss:// over TLS), tcp://HOST:PORT, stdio:COMMAND ARGS or builtin";

impl FromStr for Target {
    type Err = TargetError;

    fn from_str(input: &str) -> Result<Self, TargetError> {
        let err = |reason: String| TargetError { input: input.to_string(), reason };
        let s = input.trim();
        if s == "builtin" {
            return Ok(Target::Builtin);
        }
        if let Some(cmd) = s.strip_prefix("stdio:") {
            let mut words = split_command(cmd).map_err(|r| err(r.to_string()))?;
            if words.is_empty() {
                return Err(err("stdio: needs a command, e.g. stdio:node server.js".into()));
            }
            let command = words.remove(0);
            return Ok(Target::Stdio { command, args: words });
        }
        let (scheme, _) = s.split_once("://").ok_or_else(|| err(EXPECTED.into()))?;
        match scheme {
            "http" | "https" => check_http(s).map(|_| Target::Http { url: s.to_string() }).map_err(err),
            "sse+http" | "sse+https" => {
                let url = s.trim_start_matches("sse+").to_string();
                check_http(&url).map(|_| Target::LegacySse { url }).map_err(err)
            }
            "ws" | "wss" => check_http(s).map(|_| Target::Ws { url: s.to_string() }).map_err(err),
            "tcp" => {
                let url = url::Url::parse(s).map_err(|e| err(e.to_string()))?;
                let host = url.host_str().ok_or_else(|| err("missing host".into()))?;
                let port = url.port().ok_or_else(|| err("tcp:// needs a port, e.g. tcp://127.0.0.1:7777".into()))?;
                if url.path() != "" && url.path() != "/" {
                    return Err(err("tcp:// takes no path".into()));
                }
                Ok(Target::Tcp { host: host.trim_matches(['[', ']']).to_string(), port })
            }
            other => Err(err(format!("unknown scheme '{other}'; {EXPECTED}"))),
        }
    }
}

fn check_http(s: &str) -> Result<(), String> {
    let url = url::Url::parse(s).map_err(|e| e.to_string())?;
    if url.host_str().is_none_or(str::is_empty) {
        return Err("missing host".into());
    }
    Ok(())
}

impl Target {
    /// Whether the target is reached over TLS (`https://`, `sse+https://`, `wss://`).
    pub fn is_tls(&self) -> bool {
        match self {
            Target::Http { url } | Target::LegacySse { url } | Target::Ws { url } => {
                url.starts_with("https://") || url.starts_with("wss://")
            }
            _ => false,
        }
    }

    /// Host and port of a socket-based target (`None` for stdio and builtin).
    pub fn host_port(&self) -> Option<(String, u16)> {
        match self {
            Target::Tcp { host, port } => Some((host.clone(), *port)),
            Target::Http { url } | Target::LegacySse { url } | Target::Ws { url } => {
                let u = url::Url::parse(url).ok()?;
                Some((u.host_str()?.trim_matches(['[', ']']).to_string(), u.port_or_known_default()?))
            }
            Target::Stdio { .. } | Target::Builtin => None,
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Http { url } | Target::Ws { url } => f.write_str(url),
            Target::LegacySse { url } => write!(f, "sse+{url}"),
            Target::Tcp { host, port } if host.contains(':') => write!(f, "tcp://[{host}]:{port}"),
            Target::Tcp { host, port } => write!(f, "tcp://{host}:{port}"),
            Target::Stdio { command, args } => {
                write!(f, "stdio:{command}")?;
                args.iter().try_for_each(|a| write!(f, " {a}"))
            }
            Target::Builtin => f.write_str("builtin"),
        }
    }
}

/// Splits a command line on whitespace, honouring single and double quotes: the one rule
/// for every command given as a single string (`stdio:COMMAND ARGS`, `--server`, a suite's
/// `server.command`). Whitespace separates words; a quoted part (`'...'` or `"..."`) is
/// taken literally, quotes removed, and joins the word around it, so `sh -c 'exec sleep 1'`
/// is `["sh", "-c", "exec sleep 1"]` and `''` is an empty word. There are no escapes,
/// variables or globs: no shell is involved. An unterminated quote is an error.
pub fn split_command(s: &str) -> Result<Vec<String>, &'static str> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    for c in s.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => cur.push(c),
            (None, '"' | '\'') => {
                quote = Some(c);
                in_word = true;
            }
            (None, c) if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            (None, c) => {
                cur.push(c);
                in_word = true;
            }
        }
    }
    if quote.is_some() {
        return Err("unterminated quote in command");
    }
    if in_word {
        words.push(cur);
    }
    Ok(words)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_scheme() {
        assert_eq!(
            "tcp://127.0.0.1:7777".parse::<Target>().unwrap(),
            Target::Tcp { host: "127.0.0.1".into(), port: 7777 }
        );
        assert_eq!(
            "http://127.0.0.1:8080/mcp".parse::<Target>().unwrap(),
            Target::Http { url: "http://127.0.0.1:8080/mcp".into() }
        );
        assert_eq!(
            "sse+http://127.0.0.1:1/sse".parse::<Target>().unwrap(),
            Target::LegacySse { url: "http://127.0.0.1:1/sse".into() }
        );
        assert_eq!("ws://[::1]:9/ws".parse::<Target>().unwrap().host_port(), Some(("::1".into(), 9)));
        assert_eq!(
            "stdio:node 'my server.js' --x".parse::<Target>().unwrap(),
            Target::Stdio { command: "node".into(), args: vec!["my server.js".into(), "--x".into()] }
        );
        assert_eq!("builtin".parse::<Target>().unwrap(), Target::Builtin);
    }

    #[test]
    fn parses_tls_schemes() {
        let https: Target = "https://localhost/mcp".parse().unwrap();
        assert_eq!(https, Target::Http { url: "https://localhost/mcp".into() });
        assert_eq!(https.host_port(), Some(("localhost".into(), 443)));
        assert!(https.is_tls());
        let sse: Target = "sse+https://127.0.0.1:8443/sse".parse().unwrap();
        assert_eq!(sse, Target::LegacySse { url: "https://127.0.0.1:8443/sse".into() });
        assert_eq!(sse.to_string(), "sse+https://127.0.0.1:8443/sse");
        assert!("wss://[::1]:9/ws".parse::<Target>().unwrap().is_tls());
        assert!(!"ws://[::1]:9/ws".parse::<Target>().unwrap().is_tls());
    }

    #[test]
    fn rejects_bad_targets_with_reasons() {
        for (input, needle) in [
            ("ftp://x", "unknown scheme 'ftp'"),
            ("tcp://127.0.0.1", "needs a port"),
            ("localhost:80", "expected http://"),
            ("stdio:", "needs a command"),
            ("stdio:node 'x", "unterminated quote"),
            ("https://", "host"),
        ] {
            let e = input.parse::<Target>().unwrap_err();
            assert!(e.to_string().contains(needle), "{input}: {e}");
        }
    }

    #[test]
    fn displays_round_trip() {
        for s in ["tcp://127.0.0.1:7", "sse+http://127.0.0.1:1/sse", "stdio:a b", "http://h:1/mcp", "tcp://[::1]:5"] {
            assert_eq!(s.parse::<Target>().unwrap().to_string(), s);
        }
    }
}
