//! `mcpscript proxy --listen URL --upstream URL [--fault SPEC]...`: the fault-injecting proxy
//! as a standalone process. Prints `listening URL` (the upstream target as reached through
//! the proxy) once it accepts connections, runs until SIGTERM or Ctrl-C, then prints its
//! counters (a `stats {json}` line on stdout and a summary on stderr).

use super::args::ProxyArgs;
use super::serve::wait_for_stop_signal;
use super::{runtime, CliError, Exit};
use crate::chaos::{ChaosError, Fault, Framing, Proxy, ProxyOptions};
use crate::client::Target;
use crate::server::workers::{LISTENING, STATS};
use crate::server::Listen;
use std::io::Write;
use std::net::SocketAddr;
use std::time::Duration;

/// The fault reference shown by `mcpscript proxy --help`.
pub const FAULT_HELP: &str = "\
Faults (--fault NAME:key=value,...; every fault also takes direction=upstream|downstream|both
(default downstream) and toxicity=0..1, the fraction of connections affected (default 1)):
  TCP level (Toxiproxy's vocabulary):
    latency:latency=100ms,jitter=5ms          delay every chunk
    bandwidth:rate=100                        limit to RATE KB/s
    slow_close:delay=1s                       delay the close after the sender closed
    timeout:timeout=5s                        black hole; close after TIMEOUT (0: never)
    reset_peer:timeout=1s                     close with RST after TIMEOUT
    slicer:average_size=64,size_variation=32,delay=1ms
                                              cut chunks into small slices
    limit_data:bytes=10000                    close after BYTES bytes
    loss:probability=0.01,rto=200ms           hold a chunk back for a retransmission timeout
    drop_connection:probability=0.1,min_messages=2,max_messages=50
                                              close a connection mid-stream (or min_bytes/max_bytes)
  Message level (JSON-RPC messages: lines, WebSocket frames, HTTP bodies, SSE events):
    drop:probability=0.05                     drop a message
    corrupt:probability=0.02,bytes=1,mode=garble
                                              damage bytes (garble: always invalid JSON; flip: bit rot)
    truncate:probability=0.02                 cut a message short, framing kept valid
    duplicate:probability=0.01                send a message twice
    delay:probability=0.1,delay=500ms,jitter=0ms
                                              hold a message (and what follows it)
Durations need a unit (us, ms, s, m, h); probabilities are fractions from 0 to 1.
A JSON object works too: '{\"type\":\"latency\",\"latency\":\"100ms\",\"stream\":\"upstream\"}', or Toxiproxy's
shape, '{\"type\":\"latency\",\"stream\":\"upstream\",\"attributes\":{\"latency\":100}}', whose bare numbers
are milliseconds as in Toxiproxy's API (the one place a duration needs no unit).";

/// The validated plan of one `mcpscript proxy` run.
#[derive(Debug)]
pub struct Plan {
    pub listen: SocketAddr,
    pub upstream: Target,
    pub faults: Vec<Fault>,
    pub seed: u64,
    pub opts: ProxyOptions,
}

/// Checks every argument; nothing downstream re-checks them.
pub fn plan_from(a: &ProxyArgs) -> Result<Plan, CliError> {
    let listen = parse_listen(&a.listen)?;
    if !a.allow_remote && !listen.ip().is_loopback() {
        return Err(CliError::invalid(format!(
            "--listen {}: not a loopback address; pass --allow-remote to listen on other interfaces",
            a.listen
        )));
    }
    let upstream: Target = a.upstream.parse().map_err(|e| CliError::invalid(format!("--upstream: {e}")))?;
    if upstream.host_port().is_none() {
        return Err(CliError::invalid(format!(
            "--upstream {upstream}: only socket targets (tcp://, http://, sse+http://, ws://) can go through the proxy"
        )));
    }
    let faults = a
        .faults
        .iter()
        .map(|s| Fault::parse(s).map_err(|e| CliError::invalid(format!("--fault '{s}': {e}"))))
        .collect::<Result<Vec<_>, _>>()?;
    let framing = match &a.framing {
        None => None,
        Some(f) => Some(f.parse::<Framing>().map_err(|e| CliError::invalid(format!("--framing: {e}")))?),
    };
    let seed = a.seed.unwrap_or_else(random_seed);
    Ok(Plan { listen, upstream, faults, seed, opts: ProxyOptions { framing, max_message_size: a.max_message_size } })
}

/// `tcp://H:P`, `H:P`, or any listen URL `mcpscript serve` takes (the path is ignored).
fn parse_listen(s: &str) -> Result<SocketAddr, CliError> {
    let url = if s.contains("://") { s.to_string() } else { format!("tcp://{s}") };
    let url = match url.split_once("://") {
        // The proxy carries any protocol; only the address matters.
        Some((_, rest)) => format!("tcp://{}", rest.split('/').next().unwrap_or(rest)),
        None => url,
    };
    Listen::parse(&url).map(|l| l.addr()).map_err(|e| CliError::invalid(format!("--listen {s}: {e}")))
}

fn random_seed() -> u64 {
    let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    (t.as_nanos() as u64) ^ ((std::process::id() as u64) << 32)
}

fn chaos_error(e: ChaosError) -> CliError {
    match e {
        ChaosError::Bind { .. } => CliError::failed(e.to_string()),
        _ => CliError::invalid(e.to_string()),
    }
}

pub fn run(a: ProxyArgs) -> Result<Exit, CliError> {
    let plan = plan_from(&a)?;
    let rt = runtime(0)?;
    rt.block_on(async move {
        let proxy = Proxy::start_with(&plan.upstream, plan.listen, plan.seed, plan.opts).await.map_err(chaos_error)?;
        for f in &plan.faults {
            proxy.add_fault(f.clone()).map_err(chaos_error)?;
        }
        let through = proxy.target().map(|t| t.to_string()).unwrap_or_else(|| format!("tcp://{}", proxy.addr()));
        {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{LISTENING}{through}");
            let _ = out.flush();
        }
        eprintln!(
            "mcpscript proxy: {} -> {} (framing {}, seed {})",
            proxy.addr(),
            plan.upstream,
            proxy.framing().as_str(),
            proxy.seed()
        );
        for (id, f) in proxy.faults() {
            eprintln!("  fault {id}: {f}");
        }
        let reachable =
            tokio::time::timeout(Duration::from_secs(1), tokio::net::TcpStream::connect(proxy.upstream_addr()));
        if !matches!(reachable.await, Ok(Ok(_))) {
            eprintln!("mcpscript proxy: warning: {} does not accept connections yet", plan.upstream);
        }
        wait_for_stop_signal().await;
        let stats = proxy.shutdown().await;
        let json = serde_json::to_string(&stats).unwrap_or_default();
        crate::console::say(&format!("{STATS}{json}\n"));
        eprintln!("mcpscript proxy: {stats}");
        Ok(Exit::Ok)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(listen: &str, upstream: &str, faults: &[&str]) -> ProxyArgs {
        ProxyArgs {
            listen: listen.into(),
            upstream: upstream.into(),
            faults: faults.iter().map(|s| s.to_string()).collect(),
            seed: Some(1),
            framing: None,
            allow_remote: false,
            max_message_size: 1 << 20,
        }
    }

    #[test]
    fn plans_and_rejects() {
        let p = plan_from(&args("127.0.0.1:0", "http://127.0.0.1:1/mcp", &["latency:latency=1ms"])).unwrap();
        assert_eq!(p.listen.port(), 0);
        assert_eq!(p.faults.len(), 1);
        assert!(plan_from(&args("http://localhost:5/x", "tcp://127.0.0.1:1", &[])).is_ok());
        let e = plan_from(&args("0.0.0.0:0", "tcp://127.0.0.1:1", &[])).unwrap_err();
        assert!(e.message.contains("--allow-remote"));
        let e = plan_from(&args("127.0.0.1:0", "stdio:cat", &[])).unwrap_err();
        assert!(e.message.contains("only socket targets"));
        let e = plan_from(&args("127.0.0.1:0", "tcp://127.0.0.1:1", &["drop:probability=1.5"])).unwrap_err();
        assert_eq!(e.exit, Exit::Invalid);
        assert!(e.message.contains("between 0 and 1"), "{}", e.message);
    }
}
