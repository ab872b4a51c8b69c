//! One server's token, shared by every session of a run that talks to it. Sessions read
//! it per request ([`TokenCache::header`], which also starts a background refresh shortly
//! before it expires); a 401 or a 403 `insufficient_scope` comes to
//! [`TokenCache::challenge`], which runs the flow once for everyone: sessions that got
//! the same refusal meanwhile wait on the flow lock and then find the new token.
//! Discovery and the client identity are kept for later grants.

use super::challenge::{self, Bearer};
use super::discovery::{self, Discovered};
use super::grant::{self, Ctx, TokenReply};
use super::registration::{self, Client};
use super::{GrantKind, OAuth, Secret};
use hyper::header::HeaderValue;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use url::Url;

/// Step-up authorizations (403 `insufficient_scope`) allowed per server and run: a server
/// that keeps refusing gets no endless loop of authorizations.
pub const MAX_STEP_UPS: u32 = 2;

/// A token the server rejected this soon after it was granted gets no new flow.
const FRESH: Duration = Duration::from_secs(1);

struct Token {
    header: HeaderValue,
    obtained: Instant,
    expires_in: Option<Duration>,
    refresh: Option<Secret>,
}

impl Token {
    /// Refresh when less than a fifth of its life (at most a minute) is left.
    fn needs_refresh(&self, now: Instant) -> bool {
        self.expires_in.is_some_and(|life| {
            let margin = (life / 5).min(Duration::from_secs(60));
            now + margin >= self.obtained + life
        })
    }
}

/// What the flow keeps between grants.
#[derive(Default)]
struct Flow {
    found: Option<Discovered>,
    client: Option<Client>,
    grant: Option<GrantKind>,
    /// The scope the current token was asked for.
    scope: Option<String>,
    step_ups: u32,
}

/// The token of one server for one run.
pub struct TokenCache {
    oauth: Arc<OAuth>,
    server: Url,
    token: Mutex<Option<Token>>,
    flow: tokio::sync::Mutex<Flow>,
    refreshing: AtomicBool,
}

impl std::fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TokenCache({}, token: <redacted>)", self.server)
    }
}

impl TokenCache {
    pub(super) fn new(oauth: Arc<OAuth>, server: Url) -> TokenCache {
        TokenCache {
            oauth,
            server,
            token: Mutex::new(None),
            flow: tokio::sync::Mutex::new(Flow::default()),
            refreshing: AtomicBool::new(false),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Token>> {
        self.token.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The `Authorization` value for the next request (none before the first flow). Starts
    /// a background refresh when the token nears its expiry.
    pub fn header(self: &Arc<Self>) -> Option<HeaderValue> {
        let guard = self.lock();
        let t = guard.as_ref()?;
        if t.needs_refresh(Instant::now()) && !self.refreshing.swap(true, Ordering::AcqRel) {
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                let me = self.clone();
                rt.spawn(async move {
                    if let Err(e) = me.refresh_now().await {
                        tracing::warn!(server = %me.server, "OAuth: refreshing the token failed: {e}");
                    }
                    me.refreshing.store(false, Ordering::Release);
                });
            } else {
                self.refreshing.store(false, Ordering::Release);
            }
        }
        Some(t.header.clone())
    }

    /// Handles a 401 or 403 whose `WWW-Authenticate` is `www_authenticate`, for a request
    /// that carried `sent`. `Ok(true)`: there is a (new) token, retry the request;
    /// `Ok(false)`: not an OAuth matter (a 403 other than `insufficient_scope`); `Err`: the
    /// flow failed or gave up, saying why.
    pub async fn challenge(
        &self,
        status: u16,
        www_authenticate: &str,
        sent: Option<&HeaderValue>,
    ) -> Result<bool, String> {
        let bearer = challenge::bearer(www_authenticate).unwrap_or_default();
        if status == 403 && bearer.error.as_deref() != Some("insufficient_scope") {
            return Ok(false);
        }
        let mut flow = self.flow.lock().await;
        {
            let guard = self.lock();
            if let Some(t) = guard.as_ref() {
                if Some(&t.header) != sent {
                    return Ok(true); // another session already got a new token
                }
                if status == 401 && t.obtained.elapsed() < FRESH {
                    return Err("the server refused the token it had just been given (HTTP 401)".into());
                }
            }
        }
        let scope = if status == 403 {
            if flow.step_ups >= MAX_STEP_UPS {
                return Err(format!(
                    "the server still answers 403 insufficient_scope (wants scope '{}') after {} step-up authorizations; giving up",
                    bearer.scope.as_deref().unwrap_or(""),
                    flow.step_ups
                ));
            }
            flow.step_ups += 1;
            Some(union(flow.scope.as_deref(), bearer.scope.as_deref()))
        } else {
            None
        };
        self.run(&mut flow, &bearer, scope).await?;
        Ok(true)
    }

    /// Discovery and registration (first time only), then a grant; the token is stored.
    async fn run(&self, flow: &mut Flow, bearer: &Bearer, step_up: Option<String>) -> Result<(), String> {
        let (cfg, tls) = (&self.oauth.config, &self.oauth.tls);
        if flow.found.is_none() {
            let hint = bearer.resource_metadata.as_deref();
            flow.found = Some(discovery::discover(tls, &self.server, hint, cfg.timeout).await?);
        }
        let found = flow.found.clone().expect("discovered above");
        let grant = *flow.grant.get_or_insert_with(|| grant::choose(cfg, &found.server));
        if flow.client.is_none() {
            flow.client = Some(registration::identify(cfg, tls, &found.server, grant, cfg.timeout).await?);
        }
        let client = flow.client.clone().expect("identified above");
        let scope = step_up.or_else(|| {
            cfg.scope.clone().or_else(|| bearer.scope.clone()).or_else(|| {
                found
                    .prm
                    .as_ref()
                    .and_then(|p| p.scopes_supported.as_ref())
                    .filter(|s| !s.is_empty())
                    .map(|s| s.join(" "))
            })
        });
        let ctx = Ctx { cfg, tls, found: &found, client: &client };
        tracing::debug!(server = %self.server, ?grant, scope = scope.as_deref().unwrap_or(""), "OAuth: getting a token");
        let reply = match grant {
            GrantKind::AuthorizationCode => grant::authorization_code(&ctx, scope.as_deref()).await?,
            GrantKind::ClientCredentials => grant::client_credentials(&ctx, scope.as_deref()).await?,
        };
        flow.scope = scope;
        self.store(reply, None);
        Ok(())
    }

    fn store(&self, reply: TokenReply, old_refresh: Option<Secret>) {
        let mut header =
            HeaderValue::try_from(format!("Bearer {}", reply.access_token.expose())).expect("checked when parsed");
        header.set_sensitive(true);
        *self.lock() = Some(Token {
            header,
            obtained: Instant::now(),
            expires_in: reply.expires_in,
            refresh: reply.refresh_token.or(old_refresh),
        });
    }

    /// Renews a token that nears its expiry: the refresh-token grant when there is a
    /// refresh token (a new grant if that fails), else a new grant.
    pub async fn refresh_now(&self) -> Result<(), String> {
        let mut flow = self.flow.lock().await;
        let refresh = {
            let guard = self.lock();
            match guard.as_ref() {
                Some(t) if t.needs_refresh(Instant::now()) => t.refresh.clone(),
                _ => return Ok(()), // renewed meanwhile
            }
        };
        if let (Some(rt), Some(found), Some(client)) = (&refresh, &flow.found, &flow.client) {
            let ctx = Ctx { cfg: &self.oauth.config, tls: &self.oauth.tls, found, client };
            match grant::refresh(&ctx, rt).await {
                Ok(reply) => {
                    self.store(reply, refresh.clone());
                    return Ok(());
                }
                Err(e) => tracing::debug!("OAuth: the refresh-token grant failed ({e}); getting a new token"),
            }
        }
        let scope = flow.scope.clone();
        self.run(&mut flow, &Bearer::default(), scope).await
    }
}

/// The scopes of `a` and `b`, space-separated, each once, in order.
fn union(a: Option<&str>, b: Option<&str>) -> String {
    let mut out: Vec<&str> = Vec::new();
    for s in a.into_iter().chain(b).flat_map(str::split_whitespace) {
        if !out.contains(&s) {
            out.push(s);
        }
    }
    out.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_up_scopes_are_the_union() {
        assert_eq!(union(Some("mcp:basic"), Some("mcp:basic mcp:write")), "mcp:basic mcp:write");
        assert_eq!(union(None, Some("a")), "a");
        assert_eq!(union(Some("a b"), None), "a b");
    }

    #[test]
    fn tokens_are_refreshed_before_they_expire() {
        let now = Instant::now();
        let t = |life: Option<u64>| Token {
            header: HeaderValue::from_static("Bearer x"),
            obtained: now,
            expires_in: life.map(Duration::from_secs),
            refresh: None,
        };
        assert!(!t(Some(3600)).needs_refresh(now));
        assert!(!t(Some(3600)).needs_refresh(now + Duration::from_secs(3539)));
        assert!(t(Some(3600)).needs_refresh(now + Duration::from_secs(3540)));
        assert!(!t(Some(10)).needs_refresh(now + Duration::from_secs(7)));
        assert!(t(Some(10)).needs_refresh(now + Duration::from_secs(8)));
        assert!(!t(None).needs_refresh(now + Duration::from_secs(1_000_000)));
    }
}
