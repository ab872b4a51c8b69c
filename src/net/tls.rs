//! TLS for `https://`, `sse+https://` and `wss://`, on both sides, through rustls with the
//! ring provider.
//!
//! Client: [`TlsSettings`] (what `--ca-cert` and `--insecure` say; serialisable, so load
//! worker processes get the same) become a [`ClientTls`], checked when built (a CA file
//! that cannot be read or holds no certificate fails there) and shared by every session of
//! a run; its rustls configuration, with the platform's root certificates, is built once,
//! on the first TLS connection, so runs without TLS never read the platform store.
//! [`ClientTls::target`] names the server (SNI and certificate name from the URL's host)
//! and [`wrap`] does the handshake over a connected socket. ALPN offers `http/1.1` (every
//! transport here is HTTP/1.1, WebSocket included).
//!
//! Server: [`ServerTlsFiles`] (`--tls-cert`, `--tls-key`) become a [`TlsAcceptor`] per
//! listener ([`server_acceptor`], errors name the file and what is wrong with it); each
//! connection's handshake runs in that connection's own task under [`HANDSHAKE_TIMEOUT`].
//!
//! Both sides use [`MaybeTls`]: a socket that is plain TCP or TLS, one type for hyper and
//! tungstenite.

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
pub use tokio_rustls::TlsAcceptor;

/// The one application protocol offered and accepted: every transport is HTTP/1.1.
const ALPN_HTTP11: &[u8] = b"http/1.1";

/// How long a server waits for a client's TLS handshake before dropping the connection.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// What is wrong with a certificate, key or CA file.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{flag} {}: cannot read the file: {source}", path.display())]
    Read { flag: &'static str, path: PathBuf, source: io::Error },
    #[error("{flag} {}: {reason}", path.display())]
    Invalid { flag: &'static str, path: PathBuf, reason: String },
    #[error("--tls-key {} does not match the certificate in --tls-cert {}", key.display(), cert.display())]
    KeyMismatch { cert: PathBuf, key: PathBuf },
    #[error("TLS set-up: {0}")]
    Setup(String),
}

/// The crypto provider of every TLS configuration: ring, because aws-lc-rs builds slowly.
/// rustls 0.23.48 deprecates it for lacking post-quantum key exchange, which a test tool
/// does not need (classical X25519 and the NIST curves are negotiated).
#[allow(deprecated)]
fn provider() -> Arc<CryptoProvider> {
    static PROVIDER: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    PROVIDER.get_or_init(|| Arc::new(rustls::crypto::ring::default_provider())).clone()
}

/// The certificates of a PEM file, in order; an error names `flag` and the file.
fn read_certs(flag: &'static str, path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bytes = std::fs::read(path).map_err(|source| TlsError::Read { flag, path: path.to_path_buf(), source })?;
    let invalid = |reason: String| TlsError::Invalid { flag, path: path.to_path_buf(), reason };
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| invalid(format!("not a valid PEM file: {e}")))?;
    if certs.is_empty() {
        return Err(invalid("holds no PEM certificate (-----BEGIN CERTIFICATE-----)".into()));
    }
    Ok(certs)
}

/// A client's TLS settings: `--ca-cert` and `--insecure`. Serialisable: load plans carry
/// them to worker processes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TlsSettings {
    /// PEM file of certificates trusted besides the platform's root certificates (an
    /// absolute path, so that worker processes in other folders find it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_cert: Option<PathBuf>,
    /// Accept any server certificate (self-signed test servers).
    #[serde(default)]
    pub insecure: bool,
}

/// The TLS side of a client: settings checked once, and the rustls configuration built on
/// first use and shared by every clone (every session of a run).
#[derive(Clone)]
pub struct ClientTls {
    settings: TlsSettings,
    extra_roots: Arc<Vec<CertificateDer<'static>>>,
    config: Arc<OnceLock<Result<Arc<rustls::ClientConfig>, String>>>,
}

impl fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientTls").field("settings", &self.settings).finish_non_exhaustive()
    }
}

impl Default for ClientTls {
    /// Platform roots only, certificates verified.
    fn default() -> Self {
        ClientTls { settings: TlsSettings::default(), extra_roots: Arc::default(), config: Arc::default() }
    }
}

impl ClientTls {
    /// Checks the settings: the `--ca-cert` file must be readable and hold certificates
    /// that can be trust anchors.
    pub fn new(settings: TlsSettings) -> Result<ClientTls, TlsError> {
        let extra_roots = match &settings.ca_cert {
            None => Vec::new(),
            Some(path) => {
                let certs = read_certs("--ca-cert", path)?;
                let mut store = RootCertStore::empty();
                for c in &certs {
                    store.add(c.clone()).map_err(|e| TlsError::Invalid {
                        flag: "--ca-cert",
                        path: path.clone(),
                        reason: format!("not a usable CA certificate: {e}"),
                    })?;
                }
                certs
            }
        };
        Ok(ClientTls { settings, extra_roots: Arc::new(extra_roots), config: Arc::default() })
    }

    pub fn settings(&self) -> &TlsSettings {
        &self.settings
    }

    /// The rustls configuration, built on the first call (reading the platform's roots).
    fn config(&self) -> Result<Arc<rustls::ClientConfig>, String> {
        self.config.get_or_init(|| self.build()).clone()
    }

    fn build(&self) -> Result<Arc<rustls::ClientConfig>, String> {
        let builder = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS set-up: {e}"))?;
        let mut config = if self.settings.insecure {
            builder.dangerous().with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate)).with_no_client_auth()
        } else {
            let mut roots = RootCertStore::empty();
            let native = rustls_native_certs::load_native_certs();
            for e in &native.errors {
                tracing::debug!("platform root certificates: {e}");
            }
            roots.add_parsable_certificates(native.certs);
            for c in self.extra_roots.iter() {
                // Checked in `new`; a failure here would only drop that one anchor.
                let _ = roots.add(c.clone());
            }
            if roots.is_empty() {
                return Err("no trusted root certificates: the platform store is empty or unreadable; \
                            pass --ca-cert FILE (or --insecure for a test server)"
                    .into());
            }
            let webpki = rustls::client::WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider())
                .build()
                .map_err(|e| format!("TLS set-up: {e}"))?;
            let verifier = PinnedOrTrusted { webpki, pinned: self.extra_roots.clone() };
            builder.dangerous().with_custom_certificate_verifier(Arc::new(verifier)).with_no_client_auth()
        };
        config.alpn_protocols = vec![ALPN_HTTP11.to_vec()];
        Ok(Arc::new(config))
    }

    /// Builds the rustls configuration now (it is otherwise built on the first TLS
    /// connection): a load phase does it before timing connects. Fails when there is no
    /// trusted root certificate at all.
    pub fn warm(&self) -> Result<(), String> {
        self.config().map(|_| ())
    }

    /// The server to verify: `host` (a name or an IP address, brackets allowed) is sent as
    /// SNI (names only) and must be in the certificate. Builds the configuration if needed.
    pub fn target(&self, host: &str) -> Result<TlsTarget, String> {
        let bare = host.trim_matches(['[', ']']);
        let name =
            ServerName::try_from(bare.to_string()).map_err(|_| format!("'{host}' is not a valid TLS server name"))?;
        let connector = tokio_rustls::TlsConnector::from(self.config()?);
        Ok(TlsTarget { connector, name, host: bare.to_string() })
    }
}

/// One server a client talks TLS to: its name and the run's connector.
#[derive(Clone)]
pub struct TlsTarget {
    connector: tokio_rustls::TlsConnector,
    name: ServerName<'static>,
    host: String,
}

impl fmt::Debug for TlsTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsTarget").field("host", &self.host).finish_non_exhaustive()
    }
}

/// Runs the client handshake over `stream` when `tls` is given; plain TCP otherwise.
/// Errors say what failed; a certificate that does not verify is named as such, with a
/// hint at `--ca-cert` and `--insecure`.
pub async fn wrap(stream: TcpStream, tls: Option<&TlsTarget>) -> Result<MaybeTls, String> {
    let Some(t) = tls else { return Ok(MaybeTls::Plain(stream)) };
    match t.connector.connect(t.name.clone(), stream).await {
        Ok(s) => Ok(MaybeTls::Tls(Box::new(s.into()))),
        Err(e) => Err(handshake_error(&t.host, &e)),
    }
}

/// Says why a client handshake with `host` failed.
fn handshake_error(host: &str, e: &io::Error) -> String {
    match e.get_ref().and_then(|inner| inner.downcast_ref::<rustls::Error>()) {
        Some(rustls::Error::InvalidCertificate(c)) => {
            let hint = match c {
                CertificateError::UnknownIssuer | CertificateError::BadSignature | CertificateError::Other(_) => {
                    " (pass --ca-cert FILE with the server's CA or its own certificate, \
                     or --insecure for a test server)"
                }
                _ => "",
            };
            format!("TLS handshake with {host}: certificate verification failed: {c}{hint}")
        }
        Some(other) => format!("TLS handshake with {host} failed: {other}"),
        None => format!("TLS handshake with {host} failed: {e}"),
    }
}

/// Normal verification (a chain to a trusted root, valid now, naming the server), except
/// that a server presenting exactly one of the `--ca-cert` certificates is accepted: a
/// self-signed server's own certificate, which WebPKI rules refuse as an end entity when
/// it is marked as a CA (as `openssl req -x509` makes them), is trusted because the user
/// said so, byte for byte.
#[derive(Debug)]
struct PinnedOrTrusted {
    webpki: Arc<rustls::client::WebPkiServerVerifier>,
    pinned: Arc<Vec<CertificateDer<'static>>>,
}

impl ServerCertVerifier for PinnedOrTrusted {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self.webpki.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now) {
            Err(e) if !is_about_time(&e) && self.pinned.iter().any(|c| c.as_ref() == end_entity.as_ref()) => {
                Ok(ServerCertVerified::assertion())
            }
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.webpki.supported_verify_schemes()
    }
}

/// Whether a verification error says the certificate is expired or not yet valid (a
/// pinned certificate is not excused that).
fn is_about_time(e: &rustls::Error) -> bool {
    matches!(
        e,
        rustls::Error::InvalidCertificate(
            CertificateError::Expired
                | CertificateError::ExpiredContext { .. }
                | CertificateError::NotValidYet
                | CertificateError::NotValidYetContext { .. }
        )
    )
}

/// `--insecure`: any certificate is accepted, but the handshake signatures are still
/// checked (the connection is encrypted, only the server's identity is not verified).
#[derive(Debug)]
struct AcceptAnyCertificate;

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &provider().signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &provider().signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        provider().signature_verification_algorithms.supported_schemes()
    }
}

/// A TLS server's certificate chain and private key (`--tls-cert`, `--tls-key`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerTlsFiles {
    /// PEM: the server's certificate first, then any intermediates.
    pub cert: PathBuf,
    /// PEM: the private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

/// Loads and checks the certificate and key (readable, PEM, the key matching the
/// certificate) and builds the acceptor of one listener.
pub fn server_acceptor(files: &ServerTlsFiles) -> Result<TlsAcceptor, TlsError> {
    let certs = read_certs("--tls-cert", &files.cert)?;
    let key_bytes = std::fs::read(&files.key).map_err(|source| TlsError::Read {
        flag: "--tls-key",
        path: files.key.clone(),
        source,
    })?;
    let key = PrivateKeyDer::from_pem_slice(&key_bytes).map_err(|e| TlsError::Invalid {
        flag: "--tls-key",
        path: files.key.clone(),
        reason: match e {
            rustls::pki_types::pem::Error::NoItemsFound => {
                "holds no PEM private key (-----BEGIN PRIVATE KEY-----, RSA or EC)".to_string()
            }
            e => format!("not a valid PEM private key: {e}"),
        },
    })?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Setup(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| match e {
            rustls::Error::InconsistentKeys(_) => {
                TlsError::KeyMismatch { cert: files.cert.clone(), key: files.key.clone() }
            }
            rustls::Error::InvalidCertificate(_) => TlsError::Invalid {
                flag: "--tls-cert",
                path: files.cert.clone(),
                reason: format!("not a valid certificate: {e}"),
            },
            e => TlsError::Invalid {
                flag: "--tls-key",
                path: files.key.clone(),
                reason: format!("cannot be used with the certificate: {e}"),
            },
        })?;
    config.alpn_protocols = vec![ALPN_HTTP11.to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// The server side of a handshake, bounded by [`HANDSHAKE_TIMEOUT`]; `None` (logged at
/// debug level) when it fails or times out: the connection is then simply dropped.
pub async fn accept(acceptor: &TlsAcceptor, stream: TcpStream) -> Option<MaybeTls> {
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
        Ok(Ok(s)) => Some(MaybeTls::Tls(Box::new(s.into()))),
        Ok(Err(e)) => {
            tracing::debug!("TLS handshake failed: {e}");
            None
        }
        Err(_) => {
            tracing::debug!("TLS handshake timed out after {HANDSHAKE_TIMEOUT:?}");
            None
        }
    }
}

/// A connection that is plain TCP or TLS over TCP (client or server side).
pub enum MaybeTls {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::TlsStream<TcpStream>>),
}

impl MaybeTls {
    /// The TCP socket underneath.
    pub fn tcp(&self) -> &TcpStream {
        match self {
            MaybeTls::Plain(s) => s,
            MaybeTls::Tls(s) => s.get_ref().0,
        }
    }
}

impl AsyncRead for MaybeTls {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            MaybeTls::Plain(s) => Pin::new(s).poll_read(cx, buf),
            MaybeTls::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for MaybeTls {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            MaybeTls::Plain(s) => Pin::new(s).poll_write(cx, buf),
            MaybeTls::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            MaybeTls::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            MaybeTls::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            MaybeTls::Plain(s) => s.is_write_vectored(),
            MaybeTls::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            MaybeTls::Plain(s) => Pin::new(s).poll_flush(cx),
            MaybeTls::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            MaybeTls::Plain(s) => Pin::new(s).poll_shutdown(cx),
            MaybeTls::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_or_empty_ca_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope.pem");
        let e = ClientTls::new(TlsSettings { ca_cert: Some(missing.clone()), insecure: false }).unwrap_err();
        assert!(e.to_string().contains("--ca-cert") && e.to_string().contains("nope.pem"), "{e}");
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "hello\n").unwrap();
        let e = ClientTls::new(TlsSettings { ca_cert: Some(empty), insecure: false }).unwrap_err();
        assert!(e.to_string().contains("no PEM certificate"), "{e}");
    }

    #[test]
    fn settings_round_trip_through_json() {
        let s = TlsSettings { ca_cert: Some("/tmp/ca.pem".into()), insecure: true };
        let back: TlsSettings = serde_json::from_str(&serde_json::to_string(&s).unwrap()).unwrap();
        assert_eq!(back, s);
        let none: TlsSettings = serde_json::from_str("{}").unwrap();
        assert_eq!(none, TlsSettings::default());
    }
}
