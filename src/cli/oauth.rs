//! `--oauth` and its options: the run's OAuth configuration, checked up front (a missing
//! key file or a bad URL is an input error, exit 2, before anything connects).

use super::args::OAuthArgs;
use super::CliError;
use crate::client::oauth::{OAuth, OAuthConfig, Secret, DEFAULT_REDIRECT_URI};
use crate::net::tls::ClientTls;
use std::sync::Arc;
use std::time::Duration;

/// The run's OAuth, or `None` when no `--oauth*` option is given (a client secret from the
/// environment alone does not turn it on). Each OAuth HTTP call gets half the request
/// deadline `timeout` (at least 0.5 s), so a silent endpoint is named before the request
/// that waits on the flow times out.
pub fn oauth(a: &OAuthArgs, tls: &ClientTls, timeout: Duration) -> Result<Option<Arc<OAuth>>, CliError> {
    let on = a.oauth
        || a.oauth_client_id.is_some()
        || a.oauth_scope.is_some()
        || a.oauth_private_key.is_some()
        || a.oauth_grant.is_some()
        || a.oauth_client_metadata_url.is_some();
    if !on {
        return Ok(None);
    }
    let private_key = match &a.oauth_private_key {
        Some(p) => Some(Secret::new(
            std::fs::read_to_string(p)
                .map_err(|e| CliError::invalid(format!("--oauth-private-key {}: {e}", p.display())))?,
        )),
        None => None,
    };
    let config = OAuthConfig {
        client_id: a.oauth_client_id.clone().filter(|s| !s.is_empty()),
        client_secret: a.oauth_client_secret.clone().filter(|s| !s.is_empty()).map(Secret::new),
        scope: a.oauth_scope.clone().filter(|s| !s.trim().is_empty()),
        private_key,
        grant: a.oauth_grant.as_deref().map(str::parse).transpose().map_err(CliError::invalid)?,
        client_metadata_url: a.oauth_client_metadata_url.clone(),
        redirect_uri: a.oauth_redirect_uri.clone().unwrap_or_else(|| DEFAULT_REDIRECT_URI.to_string()),
        timeout: (timeout / 2).max(Duration::from_millis(500)),
    };
    OAuth::new(config, tls.clone()).map(Some).map_err(|e| CliError::invalid(format!("--oauth: {e}")))
}
