//! Server configuration: listen URLs (`http://`, `sse+http://`, `ws://`, their TLS forms
//! `https://`, `sse+https://`, `wss://`, and `tcp://`), the TLS certificate and key,
//! capacity limits, injected latency and errors, fault modes ([`Faults`]), auth and Origin
//! rules. Validated once, up front.

use super::ServerError;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

/// One address to serve and how. The `bool` of the HTTP-family listeners is TLS
/// (`https://`, `sse+https://`, `wss://`: every connection starts with a TLS handshake).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Listen {
    /// Streamable HTTP at this path (the same port also answers legacy SSE at `/sse` and
    /// WebSocket upgrades).
    Http(SocketAddr, String, bool),
    /// Legacy HTTP+SSE: the stream at this path, messages POSTed to `/message`.
    LegacySse(SocketAddr, String, bool),
    /// WebSocket upgrades at this path.
    Ws(SocketAddr, String, bool),
    /// Newline-delimited JSON-RPC.
    Tcp(SocketAddr),
}

impl Listen {
    pub fn parse(url: &str) -> Result<Listen, ServerError> {
        let bad = |reason: &str| ServerError::BadListen { url: url.to_string(), reason: reason.to_string() };
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| bad("expected SCHEME://HOST:PORT[/PATH] with scheme http(s), sse+http(s), ws(s) or tcp"))?;
        let (hostport, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        let addr: SocketAddr = match hostport.parse() {
            Ok(a) => a,
            Err(_) => {
                let (host, port) =
                    hostport.rsplit_once(':').ok_or_else(|| bad("missing :PORT (use :0 for any free port)"))?;
                let port: u16 = port.parse().map_err(|_| bad("the port is not a number from 0 to 65535"))?;
                let ip: IpAddr = match host {
                    "localhost" => IpAddr::from([127, 0, 0, 1]),
                    h => h
                        .trim_matches(['[', ']'])
                        .parse()
                        .map_err(|_| bad("the host must be an IP address or localhost"))?,
                };
                SocketAddr::new(ip, port)
            }
        };
        let path = if path.is_empty() { None } else { Some(path.to_string()) };
        match scheme {
            "tcp" if path.is_none() || path.as_deref() == Some("/") => Ok(Listen::Tcp(addr)),
            "tcp" => Err(bad("tcp:// takes no path")),
            "http" | "https" => Ok(Listen::Http(addr, path.unwrap_or_else(|| "/mcp".into()), scheme == "https")),
            "sse+http" | "sse+https" => {
                Ok(Listen::LegacySse(addr, path.unwrap_or_else(|| "/sse".into()), scheme == "sse+https"))
            }
            "ws" | "wss" => Ok(Listen::Ws(addr, path.unwrap_or_else(|| "/ws".into()), scheme == "wss")),
            _ => Err(bad("unknown scheme; use http(s), sse+http(s), ws(s) or tcp")),
        }
    }

    pub fn addr(&self) -> SocketAddr {
        match self {
            Listen::Http(a, ..) | Listen::LegacySse(a, ..) | Listen::Ws(a, ..) | Listen::Tcp(a) => *a,
        }
    }

    /// Whether connections start with a TLS handshake.
    pub fn is_tls(&self) -> bool {
        match self {
            Listen::Http(.., tls) | Listen::LegacySse(.., tls) | Listen::Ws(.., tls) => *tls,
            Listen::Tcp(_) => false,
        }
    }

    /// The same listener on another port (after binding port 0).
    pub fn with_port(&self, port: u16) -> Listen {
        let mut l = self.clone();
        match &mut l {
            Listen::Http(a, ..) | Listen::LegacySse(a, ..) | Listen::Ws(a, ..) | Listen::Tcp(a) => a.set_port(port),
        }
        l
    }
}

impl fmt::Display for Listen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Listen::Http(a, p, tls) => write!(f, "http{}://{a}{p}", if *tls { "s" } else { "" }),
            Listen::LegacySse(a, p, tls) => write!(f, "sse+http{}://{a}{p}", if *tls { "s" } else { "" }),
            Listen::Ws(a, p, tls) => write!(f, "ws{}://{a}{p}", if *tls { "s" } else { "" }),
            Listen::Tcp(a) => write!(f, "tcp://{a}"),
        }
    }
}

/// Everything `mcpscript serve` can be told.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub listen: Vec<Listen>,
    /// Processes sharing each port (SO_REUSEPORT); 1 serves in this process only.
    pub workers: usize,
    /// Runtime threads of each process (1: a single-threaded runtime; 0: one per core).
    pub threads: usize,
    /// Open connections (sessions for HTTP) beyond which new ones are refused.
    pub max_connections: Option<usize>,
    /// Requests in progress beyond which new ones are shed with -32000 / HTTP 503.
    pub max_inflight: Option<usize>,
    /// Added before every reply (except to `initialize`).
    pub latency: Option<Duration>,
    /// Fraction (0..=1) of requests (except `initialize`) answered with an injected -32603.
    pub error_rate: f64,
    /// Required bearer token (HTTP) or `authToken` in `initialize` params (other transports).
    pub auth_token: Option<String>,
    /// Origins accepted on HTTP besides loopback ones.
    pub allowed_origins: Vec<String>,
    /// Permit binding non-loopback addresses.
    pub allow_remote: bool,
    pub max_message_size: usize,
    /// This process's index among the workers (0 = the parent).
    pub worker_index: usize,
    /// Key that signs HTTP session ids; shared by the workers of one `serve`.
    pub session_secret: u64,
    /// Ways to misbehave on purpose (all off by default).
    pub faults: Faults,
    /// Certificate and key of the TLS listeners (`--tls-cert`, `--tls-key`).
    pub tls: Option<crate::net::tls::ServerTlsFiles>,
}

/// Largest `leak` per request.
pub const MAX_LEAK_PER_REQUEST: u64 = 16 * 1024 * 1024;

/// Default in-flight count above which `collapse` slows requests down when `max_inflight`
/// is not set.
pub const DEFAULT_COLLAPSE_THRESHOLD: usize = 4;

/// Fault modes: a server that misbehaves the way real ones do, so that tests can be shown
/// to catch it (see the module doc of [`crate::server`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Faults {
    /// Bytes retained for good by every request except `initialize` (`--fault-leak`).
    pub leak: Option<u64>,
    /// Every JSON-RPC error goes out with code -32603 (`--fault-wrong-error-codes`).
    pub wrong_error_codes: bool,
    /// Past `max_inflight` (default [`DEFAULT_COLLAPSE_THRESHOLD`]) requests are admitted
    /// and slowed down instead of shed (`--fault-collapse`).
    pub collapse: bool,
    /// `serve` started again by a managed restart exits at once (`--fault-stay-down`).
    pub stay_down: bool,
    /// Longest extra delay of a jittered reply (`--fault-jitter`).
    pub jitter: Option<Duration>,
    /// Fraction (0..=1) of replies (except to `initialize`) jittered (`--fault-jitter-fraction`).
    pub jitter_fraction: f64,
}

impl Default for Faults {
    fn default() -> Self {
        Faults {
            leak: None,
            wrong_error_codes: false,
            collapse: false,
            stay_down: false,
            jitter: None,
            jitter_fraction: 0.1,
        }
    }
}

impl Faults {
    pub fn validate(&self) -> Result<(), ServerError> {
        if let Some(n) = self.leak {
            if n == 0 || n > MAX_LEAK_PER_REQUEST {
                return Err(ServerError::Config(format!(
                    "leak (--fault-leak) must be more than 0 and at most 16 MiB per request, got {n} bytes"
                )));
            }
        }
        if self.jitter.is_some_and(|j| j.is_zero()) {
            return Err(ServerError::Config("jitter (--fault-jitter) must be longer than 0, e.g. 50ms".into()));
        }
        if !(0.0..=1.0).contains(&self.jitter_fraction) {
            return Err(ServerError::Config(format!(
                "jitter_fraction (--fault-jitter-fraction) must be between 0 and 1, got {}",
                self.jitter_fraction
            )));
        }
        Ok(())
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: vec![],
            workers: 1,
            threads: 0,
            max_connections: None,
            max_inflight: None,
            latency: None,
            error_rate: 0.0,
            auth_token: None,
            allowed_origins: vec![],
            allow_remote: false,
            max_message_size: crate::client::DEFAULT_MAX_MESSAGE,
            worker_index: 0,
            session_secret: rand::random(),
            faults: Faults::default(),
            tls: None,
        }
    }
}

impl ServerConfig {
    /// A config serving the given URLs (e.g. `tcp://127.0.0.1:0`), everything else default.
    pub fn listening(urls: &[&str]) -> Result<ServerConfig, ServerError> {
        Ok(ServerConfig {
            listen: urls.iter().map(|u| Listen::parse(u)).collect::<Result<_, _>>()?,
            ..Default::default()
        })
    }

    pub fn validate(&self) -> Result<(), ServerError> {
        if self.listen.is_empty() {
            return Err(ServerError::Config("nothing to listen on: give at least one --listen URL".into()));
        }
        for l in &self.listen {
            if !self.allow_remote && !l.addr().ip().is_loopback() {
                return Err(ServerError::BadListen {
                    url: l.to_string(),
                    reason: "not a loopback address; pass --allow-remote to serve other interfaces".into(),
                });
            }
        }
        match (self.listen.iter().find(|l| l.is_tls()), &self.tls) {
            (Some(l), None) => {
                return Err(ServerError::BadListen {
                    url: l.to_string(),
                    reason: "TLS needs a certificate and key: pass --tls-cert FILE and --tls-key FILE".into(),
                })
            }
            (None, Some(_)) => {
                return Err(ServerError::Config(
                    "--tls-cert and --tls-key need a TLS listener: --listen https://, sse+https:// or wss://".into(),
                ))
            }
            _ => {}
        }
        if !(0.0..=1.0).contains(&self.error_rate) {
            return Err(ServerError::Config(format!("--error-rate must be between 0 and 1, got {}", self.error_rate)));
        }
        if self.workers == 0 || self.workers > 64 {
            return Err(ServerError::Config(format!("--workers must be between 1 and 64, got {}", self.workers)));
        }
        if self.max_inflight == Some(0) || self.max_connections == Some(0) {
            return Err(ServerError::Config("--max-inflight and --max-connections must be at least 1".into()));
        }
        self.faults.validate()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_listen_urls() {
        assert_eq!(Listen::parse("tcp://127.0.0.1:7777").unwrap(), Listen::Tcp("127.0.0.1:7777".parse().unwrap()));
        assert_eq!(
            Listen::parse("http://localhost:0").unwrap(),
            Listen::Http("127.0.0.1:0".parse().unwrap(), "/mcp".into(), false)
        );
        let https = Listen::parse("https://127.0.0.1:8443").unwrap();
        assert_eq!(https, Listen::Http("127.0.0.1:8443".parse().unwrap(), "/mcp".into(), true));
        assert_eq!(https.to_string(), "https://127.0.0.1:8443/mcp");
        assert!(https.is_tls() && !Listen::parse("ws://127.0.0.1:1").unwrap().is_tls());
        assert_eq!(Listen::parse("wss://127.0.0.1:1").unwrap().to_string(), "wss://127.0.0.1:1/ws");
        assert_eq!(Listen::parse("sse+https://127.0.0.1:1").unwrap().to_string(), "sse+https://127.0.0.1:1/sse");
        assert_eq!(Listen::parse("ws://[::1]:9/x").unwrap().to_string(), "ws://[::1]:9/x");
        assert!(Listen::parse("tcp://example.com:1").unwrap_err().to_string().contains("IP address"));
        assert!(Listen::parse("udp://127.0.0.1:1").is_err());
        assert!(Listen::parse("tcp://127.0.0.1").unwrap_err().to_string().contains(":PORT"));
    }

    #[test]
    fn tls_listeners_need_a_certificate() {
        let mut c = ServerConfig::listening(&["https://127.0.0.1:0/mcp"]).unwrap();
        assert!(c.validate().unwrap_err().to_string().contains("--tls-cert"));
        c.tls = Some(crate::net::tls::ServerTlsFiles { cert: "c.pem".into(), key: "k.pem".into() });
        assert!(c.validate().is_ok());
        c.listen = vec![Listen::parse("http://127.0.0.1:0/mcp").unwrap()];
        assert!(c.validate().unwrap_err().to_string().contains("need a TLS listener"));
    }

    #[test]
    fn refuses_remote_binds_unless_allowed() {
        let mut c = ServerConfig::listening(&["tcp://0.0.0.0:0"]).unwrap();
        assert!(c.validate().unwrap_err().to_string().contains("--allow-remote"));
        c.allow_remote = true;
        assert!(c.validate().is_ok());
    }

    #[test]
    fn validates_faults() {
        let mut c = ServerConfig::listening(&["tcp://127.0.0.1:0"]).unwrap();
        c.faults.leak = Some(0);
        assert!(c.validate().unwrap_err().to_string().contains("--fault-leak"));
        c.faults.leak = Some(MAX_LEAK_PER_REQUEST + 1);
        assert!(c.validate().unwrap_err().to_string().contains("16 MiB"));
        c.faults.leak = Some(MAX_LEAK_PER_REQUEST);
        assert!(c.validate().is_ok());
        c.faults.jitter_fraction = 1.5;
        assert!(c.validate().unwrap_err().to_string().contains("between 0 and 1"));
        c.faults.jitter_fraction = 0.5;
        c.faults.jitter = Some(Duration::ZERO);
        assert!(c.validate().unwrap_err().to_string().contains("longer than 0"));
    }
}
