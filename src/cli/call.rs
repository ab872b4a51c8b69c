//! `mcpscript call TARGET METHOD [PARAMS]`: initialize (or, asked for the stateless
//! revision, `server/discover`), one request, print the result as JSON. How a user checks a
//! target before loading it.

use super::args::CallArgs;
use super::{runtime, CliError, Exit};
use crate::client::{ClientOptions, Session, Target};
use crate::managed::builtin;
use crate::protocol::mcp;
use crate::server::ServerConfig;
use crate::util::duration::parse_duration;
use serde_json::Value;
use std::sync::Arc;

pub fn run(a: CallArgs) -> Result<Exit, CliError> {
    let target: Target =
        a.target.parse().map_err(|e: crate::client::target::TargetError| CliError::invalid(e.to_string()))?;
    let timeout = parse_duration(&a.timeout).map_err(|e| CliError::invalid(format!("--timeout: {e}")))?;
    let params = match &a.params {
        None => None,
        Some(p) => match serde_json::from_str::<Value>(p) {
            Ok(v @ (Value::Object(_) | Value::Array(_))) => Some(v),
            Ok(_) => {
                return Err(CliError::invalid("PARAMS must be a JSON object or array, e.g. '{\"name\":\"echo\"}'"))
            }
            Err(e) => return Err(CliError::invalid(format!("PARAMS is not valid JSON: {e}"))),
        },
    };
    if !mcp::is_known(&a.protocol_version) {
        return Err(CliError::invalid(format!(
            "--protocol-version {} is not one mcpscript speaks (supported: {})",
            a.protocol_version,
            mcp::known_versions().join(", ")
        )));
    }
    let opts = Arc::new(ClientOptions {
        protocol_version: a.protocol_version.clone(),
        // MCPSCRIPT_TOKEN: the variable's name before --bearer.
        auth_token: a.bearer.clone().or_else(|| std::env::var("MCPSCRIPT_TOKEN").ok().filter(|t| !t.is_empty())),
        headers: super::run::parse_headers(&a.headers)?,
        max_message_size: a.max_message_size,
        request_timeout: timeout,
        tls: super::tls::client_tls(&a.tls)?,
        ..Default::default()
    });
    runtime(2)?.block_on(async move {
        let builtin = match target {
            Target::Builtin => Some(builtin::start_in_process(ServerConfig::default()).await?),
            _ => None,
        };
        let target = match &builtin {
            Some(s) => s
                .url("tcp")
                .unwrap_or_default()
                .parse()
                .map_err(|e: crate::client::target::TargetError| CliError::failed(e.to_string()))?,
            None => target,
        };
        let result = async {
            let session = Session::connect(&target, opts).await?;
            if a.show_server {
                let s = session.server();
                eprintln!("server: {} {} (protocol {})", s.name, s.version, s.protocol_version);
            }
            let r = session.request_timeout(&a.method, params, timeout).await;
            session.close().await;
            r
        }
        .await;
        if let Some(s) = builtin {
            s.shutdown().await;
        }
        let value = result?;
        crate::console::say(&format!("{}\n", serde_json::to_string_pretty(&value).unwrap_or_default()));
        Ok(Exit::Ok)
    })
}
