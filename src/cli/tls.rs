//! `--ca-cert` and `--insecure` (run, call, watch, suites): the client TLS of a run, checked
//! up front so a bad CA file is an input error (exit 2) before anything connects.

use super::args::TlsArgs;
use super::CliError;
use crate::net::tls::{ClientTls, TlsSettings};

/// The run's client TLS. The CA path is made absolute (load worker processes may run in
/// another folder); `--insecure` prints its warning here, once per run.
pub fn client_tls(a: &TlsArgs) -> Result<ClientTls, CliError> {
    let ca_cert = match &a.ca_cert {
        Some(p) => {
            Some(std::path::absolute(p).map_err(|e| CliError::invalid(format!("--ca-cert {}: {e}", p.display())))?)
        }
        None => None,
    };
    let tls =
        ClientTls::new(TlsSettings { ca_cert, insecure: a.insecure }).map_err(|e| CliError::invalid(e.to_string()))?;
    if a.insecure {
        eprintln!(
            "warning: --insecure: TLS server certificates are not verified (traffic is encrypted, \
             but any server can pose as the target)"
        );
    }
    Ok(tls)
}
