//! Who limited a load phase: [`LimitedBy`], the verdict every [`PhaseResult`] carries so
//! that mcpscript's own limit is never read as the server's. The evidence is gathered
//! where it is known (send lag by the open model's scheduler, CPU and memory by the
//! resource sampler of the coordinator, worker processes by the coordinator) and the
//! verdict is recomputed from it by [`assess`] whenever a result changes: at the end of a
//! process-local run, after sampling, and after every [`merge`](super::result::merge)
//! (worker processes, `mcpscript merge` of segments).

use super::plan::ModelKind;
use super::result::{decode, encode, merge_encoded, LatencyStats, PhaseResult, PhaseStatus, TimelineEntry};
use crate::util::human;
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// mcpscript (or the target) is saturated at this mean share of the cores it can use.
pub const CPU_SATURATED: f64 = 0.90;
/// The open model is behind its schedule when the p99 send lag exceeds this (ms).
pub const SEND_LAG_BOUND_MS: f64 = 10.0;
/// Latency grew when the last third's p99 is at least this many times the first third's...
pub const GROWTH_RATIO: f64 = 2.0;
/// ...and at least this much higher (ms), so 0.1 -> 0.3 ms is not growth.
pub const GROWTH_MIN_MS: f64 = 5.0;
/// Errors other than overload, timeouts and transport failures limit a phase from this rate.
pub const OTHER_ERRORS_RATE: f64 = 0.01;

/// Which side limited a phase.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Limiter {
    /// mcpscript itself: its numbers are its own limit, not the server's.
    Mcpscript,
    /// The server under test.
    Target,
    /// Connections failed while neither side was saturated.
    Network,
    /// Nothing: the load asked for was delivered with a low error rate.
    #[default]
    None,
}

impl Limiter {
    pub fn as_str(self) -> &'static str {
        match self {
            Limiter::Mcpscript => "mcpscript",
            Limiter::Target => "target",
            Limiter::Network => "network",
            Limiter::None => "none",
        }
    }
}

/// CPU use of a group of processes over a phase.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct CpuUse {
    /// Mean over the sampled time, in % of one core.
    pub mean_pct: f64,
    /// Highest sample (of a full sampling interval), in % of one core.
    pub peak_pct: f64,
    /// Cores the processes could use: for mcpscript its runtime threads (all worker
    /// processes together), at most the machine's cores; for the target the machine's.
    pub cores: f64,
    /// `mean_pct / (100 * cores)`: 1.0 is every usable core busy.
    pub mean_fraction: f64,
    /// `peak_pct / (100 * cores)`.
    pub peak_fraction: f64,
}

impl CpuUse {
    pub fn new(mean_pct: f64, peak_pct: f64, cores: f64) -> CpuUse {
        let cores = cores.max(1.0);
        CpuUse {
            mean_pct,
            peak_pct,
            cores,
            mean_fraction: mean_pct / (100.0 * cores),
            peak_fraction: peak_pct / (100.0 * cores),
        }
    }
}

/// How late the open model's scheduler sent requests against their intended send time.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct SendLag {
    /// Requests measured (every request the scheduler sent).
    pub count: u64,
    pub mean_ms: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    /// The lags in microseconds (V2 + base64), so shares merge exactly.
    #[serde(default)]
    pub histogram: String,
}

impl SendLag {
    pub fn of(h: &Histogram<u64>) -> SendLag {
        SendLag::from_stats(&LatencyStats::of(h), encode(h))
    }

    fn from_stats(l: &LatencyStats, histogram: String) -> SendLag {
        SendLag { count: l.count, mean_ms: l.mean, p50_ms: l.p50, p99_ms: l.p99, max_ms: l.max, histogram }
    }

    fn merge(&self, o: &SendLag) -> SendLag {
        match merge_encoded(&self.histogram, &o.histogram).and_then(|h| Ok((decode(&h)?, h))) {
            Ok((h, enc)) => SendLag::from_stats(&LatencyStats::of(&h), enc),
            // Unreadable histograms: keep the worse share.
            Err(_) if o.p99_ms > self.p99_ms => o.clone(),
            Err(_) => self.clone(),
        }
    }

    pub fn behind(&self) -> bool {
        self.p99_ms > SEND_LAG_BOUND_MS
    }
}

/// Worker processes of a phase.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct WorkersUse {
    pub processes: u64,
    /// Died or were killed before reporting.
    pub failed: u64,
    /// Their own send lag p99 exceeded the bound.
    pub behind: u64,
}

/// Latency of the first third of the phase's whole seconds against the last third's.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct LatencyGrowth {
    /// Seconds in each third.
    pub seconds: u32,
    pub first_p50_ms: f64,
    pub first_p99_ms: f64,
    pub last_p50_ms: f64,
    pub last_p99_ms: f64,
    /// `last_p99_ms / first_p99_ms`.
    pub ratio: f64,
    /// Whether that counts as growth: ratio >= 2 and at least 5 ms more.
    pub grew: bool,
}

/// Who limited a load phase, why, and the evidence.
///
/// `verdict` is the first of `mcpscript`, `target`, `network` for which a rule below
/// applies, else `none`; `reasons` lists every rule that applied (the verdict's first),
/// then remarks such as an in-process target.
///
/// - **mcpscript**: its CPU averaged >= 90% of the cores it can use (`mcpscript_cpu`); or
///   the open model's send lag p99 exceeded 10 ms (`send_lag`: requests went out late
///   against their intended send time); or arrivals were dropped (`dropped`) while one of
///   those held; or worker processes failed or fell behind (their own send lag p99 over
///   10 ms; `workers`).
/// - **target**: the target's CPU averaged >= 90% of the machine's cores (`target_cpu`,
///   known for a managed target, `--target-pid` or a scaled built-in server); or it shed
///   load (`rpc_-32000` overloaded, HTTP 503, HTTP 429) or requests timed out; or other
///   error replies reached 1% of the requests; or, while mcpscript had headroom (no
///   mcpscript rule applied), latency grew (`latency_growth`: the last third's p99 at least
///   twice the first third's and 5 ms more) or arrivals were dropped at `max_inflight`.
/// - **network**: transport errors (connections refused, reset or closed) or a target
///   that could not be reached, while neither side was saturated.
/// - **none**: none of these: the load asked for was delivered with a low error rate.
///
/// Evidence that could not be gathered is named in `missing` (CPU when sampling was off,
/// the target's figures when its processes are unknown). When mcpscript fell behind while
/// its own CPU was low and the machine's was >= 90% busy (`machine_busy`), a reason says
/// that other processes on the machine took its CPU (the verdict stays `mcpscript`: the
/// numbers are still not the server's). A built-in server running inside
/// mcpscript's process shares its CPU: a reason says so, and its CPU counts as mcpscript's.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct LimitedBy {
    pub verdict: Limiter,
    pub reasons: Vec<String>,
    /// CPU of mcpscript's processes (coordinator and worker processes).
    #[serde(default)]
    pub mcpscript_cpu: Option<CpuUse>,
    /// CPU of the target's processes, when known and not mcpscript's own.
    #[serde(default)]
    pub target_cpu: Option<CpuUse>,
    /// Highest RSS of the target's processes (summed), when known.
    #[serde(default)]
    pub target_peak_rss_bytes: Option<u64>,
    /// The target's sampled processes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub target_pids: Vec<u32>,
    /// The target is the built-in server running inside mcpscript's process.
    #[serde(default)]
    pub target_in_process: bool,
    /// Open model: how late requests went out.
    #[serde(default)]
    pub send_lag: Option<SendLag>,
    /// Arrivals dropped at `max_inflight` (the phase's `dropped`).
    #[serde(default)]
    pub dropped: u64,
    #[serde(default)]
    pub workers: WorkersUse,
    #[serde(default)]
    pub latency_growth: Option<LatencyGrowth>,
    /// Busy share (0..1) of the whole machine's CPU, every process counted, while the
    /// phase ran: with mcpscript's own CPU low, a high value says other work on the
    /// machine took the cores mcpscript needed.
    #[serde(default)]
    pub machine_busy: Option<f64>,
    /// Evidence that could not be gathered, and why.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub missing: Vec<String>,
}

impl LimitedBy {
    /// The gathered evidence of two shares of one phase (the derived parts are recomputed
    /// by [`assess`]): the busier share's CPU (a segment's machine), merged send lags.
    pub fn merged(a: &LimitedBy, b: &LimitedBy) -> LimitedBy {
        let busier = |x: &Option<CpuUse>, y: &Option<CpuUse>| match (x, y) {
            (Some(p), Some(q)) => Some(if q.mean_fraction > p.mean_fraction { q.clone() } else { p.clone() }),
            (p, q) => p.clone().or_else(|| q.clone()),
        };
        let mut pids = a.target_pids.clone();
        pids.extend(b.target_pids.iter().filter(|p| !a.target_pids.contains(p)));
        LimitedBy {
            mcpscript_cpu: busier(&a.mcpscript_cpu, &b.mcpscript_cpu),
            target_cpu: busier(&a.target_cpu, &b.target_cpu),
            target_peak_rss_bytes: match (a.target_peak_rss_bytes, b.target_peak_rss_bytes) {
                (Some(x), Some(y)) => Some(x.max(y)),
                (x, y) => x.or(y),
            },
            target_pids: pids,
            target_in_process: a.target_in_process || b.target_in_process,
            machine_busy: match (a.machine_busy, b.machine_busy) {
                (Some(x), Some(y)) => Some(x.max(y)),
                (x, y) => x.or(y),
            },
            send_lag: match (&a.send_lag, &b.send_lag) {
                (Some(x), Some(y)) => Some(x.merge(y)),
                (x, y) => x.clone().or_else(|| y.clone()),
            },
            ..Default::default()
        }
    }
}

/// Error kinds by which a target sheds load, with how they read.
const OVERLOAD: &[(&str, &str)] =
    &[("rpc_-32000", "shed -32000 overloaded"), ("http_503", "shed HTTP 503"), ("http_429", "rate limited HTTP 429")];

/// Recomputes the derived evidence of `r.limited_by` (dropped arrivals, worker processes,
/// latency growth, what is missing) and its verdict and reasons, from the result and the
/// gathered evidence (CPU, target, send lag). See [`LimitedBy`] for the rules.
pub fn assess(r: &mut PhaseResult) {
    let mut lb = std::mem::take(&mut r.limited_by);
    lb.dropped = r.dropped;
    lb.workers = WorkersUse {
        processes: r.workers.len() as u64,
        failed: r.workers.iter().filter(|w| w.failed).count() as u64,
        behind: r.workers.iter().filter(|w| w.behind).count() as u64,
    };
    lb.latency_growth = latency_growth(&r.timeline);
    lb.missing.clear();
    if lb.mcpscript_cpu.is_none() {
        lb.missing.push(match r.resources {
            None => "mcpscript_cpu: sampling was off (sample: false), so mcpscript's CPU is unknown".into(),
            Some(_) => "mcpscript_cpu: no CPU sample covered the phase".into(),
        });
    }
    if lb.target_cpu.is_none() {
        lb.missing.push(if lb.target_in_process {
            "target_cpu: the target runs inside mcpscript's process; its CPU is part of mcpscript's".into()
        } else if r.resources.is_none() {
            "target_cpu: sampling was off".into()
        } else {
            "target_cpu: the target's processes are unknown (a managed target or --target-pid gives them)".into()
        });
    }

    let mut mcp: Vec<String> = Vec::new();
    let mut tgt: Vec<String> = Vec::new();
    let mut net: Vec<String> = Vec::new();
    let mut remarks: Vec<String> = Vec::new();

    let cpu_saturated = lb.mcpscript_cpu.as_ref().filter(|c| c.mean_fraction >= CPU_SATURATED);
    if let Some(c) = cpu_saturated {
        mcp.push(format!(
            "mcpscript's CPU averaged {} of the {} cores it can use ({} of one core, peak {})",
            human::pct(c.mean_fraction),
            human::sig3(c.cores),
            pct_of_core(c.mean_pct),
            pct_of_core(c.peak_pct)
        ));
    }
    let lagging = lb.send_lag.as_ref().filter(|l| l.behind());
    if let Some(l) = lagging {
        mcp.push(format!(
            "requests went out late: send lag p99 {}, max {} (bound {})",
            human::ms(l.p99_ms),
            human::ms(l.max_ms),
            human::ms(SEND_LAG_BOUND_MS)
        ));
    }
    if r.dropped > 0 && (cpu_saturated.is_some() || lagging.is_some()) {
        mcp.push(format!("{} arrivals dropped while mcpscript could not keep up", human::int(r.dropped)));
    }
    if lb.workers.failed > 0 {
        mcp.push(format!("{} of {} worker processes failed", lb.workers.failed, lb.workers.processes));
    }
    if lb.workers.behind > 0 {
        mcp.push(format!(
            "{} of {} worker processes fell behind (send lag p99 over {})",
            lb.workers.behind,
            lb.workers.processes,
            human::ms(SEND_LAG_BOUND_MS)
        ));
    }
    let headroom = mcp.is_empty();

    if let Some(c) = lb.target_cpu.as_ref().filter(|c| c.mean_fraction >= CPU_SATURATED) {
        tgt.push(format!(
            "the target's CPU averaged {} of the machine's {} cores ({} of one core)",
            human::pct(c.mean_fraction),
            human::sig3(c.cores),
            pct_of_core(c.mean_pct)
        ));
    }
    // A connect phase's counts are its connects; other phases' connects (set-up and
    // reconnects) are apart from their requests.
    let setup = |k: &str| if r.model == ModelKind::Connect { 0 } else { r.connect.errors.get(k).copied().unwrap_or(0) };
    let errors = |k: &str| r.counts.errors.get(k).copied().unwrap_or(0) + setup(k);
    for (kind, label) in OVERLOAD {
        let n = errors(kind);
        if n > 0 {
            tgt.push(format!("{} requests {label}", human::int(n)));
        }
    }
    let timeouts = r.counts.timeouts + setup("timeout");
    if timeouts > 0 {
        tgt.push(format!("{} requests timed out", human::int(timeouts)));
    }
    let other: u64 = r
        .counts
        .errors
        .iter()
        .filter(|(k, _)| !OVERLOAD.iter().any(|(o, _)| o == k) && *k != "transport" && *k != "worker_lost")
        .map(|(_, n)| n)
        .sum();
    if other > 0 && other as f64 >= OTHER_ERRORS_RATE * r.counts.sent.max(1) as f64 {
        tgt.push(format!(
            "{} requests ({}) were answered with errors",
            human::int(other),
            human::pct(other as f64 / r.counts.sent.max(1) as f64)
        ));
    }
    if headroom {
        if let Some(g) = lb.latency_growth.as_ref().filter(|g| g.grew) {
            tgt.push(format!(
                "latency grew while mcpscript had headroom: p99 {} in the first {} s, {} in the last {} s ({}x)",
                human::ms(g.first_p99_ms),
                g.seconds,
                human::ms(g.last_p99_ms),
                g.seconds,
                human::sig3(g.ratio)
            ));
        }
        if r.dropped > 0 {
            tgt.push(format!(
                "{} arrivals dropped at max_inflight while mcpscript had headroom: replies came too slowly",
                human::int(r.dropped)
            ));
        }
    }

    let transport = errors("transport");
    if transport > 0 {
        net.push(format!("{} transport errors (connections refused, reset or closed)", human::int(transport)));
    }
    if r.status == PhaseStatus::Failed && r.connect.attempted == 0 && transport == 0 {
        net.push("the target could not be reached".into());
    }

    // Behind schedule without being busy itself: the machine's other work is why.
    let own_idle = lb.mcpscript_cpu.as_ref().is_some_and(|c| c.mean_fraction < 0.5);
    if let (true, Some(busy)) = (lagging.is_some() && own_idle, lb.machine_busy.filter(|b| *b >= CPU_SATURATED)) {
        remarks.push(format!(
            "the machine's CPU was {} busy while mcpscript used {} of its cores: other processes on this machine \
             took the CPU mcpscript needed to send on time",
            human::pct(busy),
            lb.mcpscript_cpu.as_ref().map_or_else(|| "-".into(), |c| human::pct(c.mean_fraction))
        ));
    }
    if lb.target_in_process {
        let pid = lb.target_pids.first().copied().unwrap_or_else(std::process::id);
        remarks.push(format!(
            "the target is the built-in server inside mcpscript's own process (pid {pid}): they share its CPU, \
             so mcpscript's CPU includes the server's and a saturated process may be either's doing"
        ));
    }

    lb.verdict = if !mcp.is_empty() {
        Limiter::Mcpscript
    } else if !tgt.is_empty() {
        Limiter::Target
    } else if !net.is_empty() {
        Limiter::Network
    } else {
        Limiter::None
    };
    let mut reasons = mcp;
    reasons.extend(tgt);
    reasons.extend(net);
    if lb.verdict == Limiter::None {
        reasons.push(nothing_limited(r, &lb));
    }
    reasons.extend(remarks);
    lb.reasons = reasons;
    r.limited_by = lb;
}

/// The reason of a `none` verdict: what was delivered.
fn nothing_limited(r: &PhaseResult, lb: &LimitedBy) -> String {
    let mut s = match (r.model, r.intended_rate) {
        (ModelKind::Connect, _) => format!(
            "{} of {} sessions opened without failures",
            human::int(r.connect.ok),
            human::int(r.connect.attempted)
        ),
        (_, Some(rate)) => format!(
            "the intended {} req/s went out on time ({} req/s sent, error rate {})",
            human::count(rate),
            human::count(r.send_rate),
            human::pct(r.error_rate)
        ),
        _ => format!(
            "no saturation, overload, latency growth or connection failures ({} req/s, error rate {})",
            human::count(r.throughput),
            human::pct(r.error_rate)
        ),
    };
    match &lb.mcpscript_cpu {
        Some(c) => s.push_str(&format!(
            "; mcpscript's CPU averaged {} of {} cores",
            human::pct(c.mean_fraction),
            human::sig3(c.cores)
        )),
        None => s.push_str("; mcpscript's CPU was not sampled"),
    }
    s
}

fn pct_of_core(pct: f64) -> String {
    format!("{}%", human::sig3(pct))
}

/// The first third of the whole seconds that sent requests and got replies, against the
/// last third; `None` with fewer than 3 such seconds.
pub fn latency_growth(timeline: &[TimelineEntry]) -> Option<LatencyGrowth> {
    let secs: Vec<&TimelineEntry> =
        timeline.iter().filter(|e| e.span >= 0.999 && e.sent > 0 && e.ok + e.errors > 0).collect();
    if secs.len() < 3 {
        return None;
    }
    let third = secs.len() / 3;
    let (first, last) = (stats_of(&secs[..third]), stats_of(&secs[secs.len() - third..]));
    let ratio = if first.1 > 0.0 { last.1 / first.1 } else { 0.0 };
    Some(LatencyGrowth {
        seconds: third as u32,
        first_p50_ms: first.0,
        first_p99_ms: first.1,
        last_p50_ms: last.0,
        last_p99_ms: last.1,
        ratio,
        grew: first.1 > 0.0 && ratio >= GROWTH_RATIO && last.1 - first.1 >= GROWTH_MIN_MS,
    })
}

/// p50 and p99 of some seconds: from their merged histograms, or (without them) the mean
/// of their per-second figures.
fn stats_of(secs: &[&TimelineEntry]) -> (f64, f64) {
    if secs.iter().all(|e| !e.hist.is_empty()) {
        let mut h = super::result::new_hist();
        let mut ok = true;
        for e in secs {
            match decode(&e.hist) {
                Ok(x) => ok &= h.add(&x).is_ok(),
                Err(_) => ok = false,
            }
        }
        if ok && !h.is_empty() {
            let l = LatencyStats::of(&h);
            return (l.p50, l.p99);
        }
    }
    let n = secs.len().max(1) as f64;
    (secs.iter().map(|e| e.p50).sum::<f64>() / n, secs.iter().map(|e| e.p99).sum::<f64>() / n)
}

/// The evidence of a verdict in a few words: `CPU 97% of 2 cores, send lag p99 35 ms`.
pub fn evidence(r: &PhaseResult) -> String {
    let lb = &r.limited_by;
    let mut parts: Vec<String> = Vec::new();
    let cpu = |c: &CpuUse, whose: &str| {
        format!("{whose}CPU {} of {} cores", human::pct(c.mean_fraction), human::sig3(c.cores))
    };
    match lb.verdict {
        Limiter::Mcpscript => {
            if let Some(c) = &lb.mcpscript_cpu {
                parts.push(cpu(c, ""));
            }
            if let Some(l) = &lb.send_lag {
                parts.push(format!("send lag p99 {}", human::ms(l.p99_ms)));
            }
            if lb.dropped > 0 {
                parts.push(format!("{} dropped", human::int(lb.dropped)));
            }
            if lb.workers.failed > 0 {
                parts.push(format!("{} worker processes failed", lb.workers.failed));
            }
            if lb.workers.behind > 0 {
                parts.push(format!("{} worker processes behind", lb.workers.behind));
            }
        }
        Limiter::Target => {
            if let Some(c) = lb.target_cpu.as_ref().filter(|c| c.mean_fraction >= CPU_SATURATED) {
                parts.push(cpu(c, "target "));
            }
            for (kind, label) in OVERLOAD {
                let n = r.counts.errors.get(*kind).copied().unwrap_or(0);
                if n > 0 {
                    parts.push(format!("{} {label}", human::int(n)));
                }
            }
            if r.counts.timeouts > 0 {
                parts.push(format!("{} timeouts", human::int(r.counts.timeouts)));
            }
            if let Some(g) = lb.latency_growth.as_ref().filter(|g| g.grew) {
                parts.push(format!("p99 grew {}x", human::sig3(g.ratio)));
            }
            if lb.dropped > 0 {
                parts.push(format!("{} dropped", human::int(lb.dropped)));
            }
            // Error replies, or another rule without a short form: its reason says it.
            if parts.is_empty() {
                if let Some(first) = lb.reasons.first() {
                    parts.push(first.clone());
                }
            }
            if let Some(c) = lb.mcpscript_cpu.as_ref() {
                parts.push(cpu(c, "mcpscript "));
            }
        }
        Limiter::Network => {
            let setup =
                if r.model == ModelKind::Connect { 0 } else { r.connect.errors.get("transport").copied().unwrap_or(0) };
            let t = r.counts.errors.get("transport").copied().unwrap_or(0) + setup;
            if t > 0 {
                parts.push(format!("{} transport errors", human::int(t)));
            }
        }
        Limiter::None => {}
    }
    if parts.is_empty() {
        if let Some(first) = lb.reasons.first() {
            parts.push(first.clone());
        }
    }
    parts.join(", ")
}

/// Whether the phase was judged (a result written before `limited_by` existed was not).
pub fn judged(r: &PhaseResult) -> bool {
    !r.limited_by.reasons.is_empty()
}

/// One cell for a report: `mcpscript (CPU 97% of 2 cores, send lag p99 35 ms)`, `none`,
/// `-` for a phase never judged.
pub fn cell(r: &PhaseResult) -> String {
    match r.limited_by.verdict {
        _ if !judged(r) => "-".into(),
        Limiter::None => "none".into(),
        v => format!("{} ({})", v.as_str(), evidence(r)),
    }
}

/// The sentence the end-of-phase log adds, `None` when nothing limited the phase.
pub fn log_line(r: &PhaseResult) -> Option<String> {
    if !judged(r) {
        return None;
    }
    let e = evidence(r);
    match r.limited_by.verdict {
        Limiter::Mcpscript => Some(format!(
            "load {}: limited by mcpscript ({e}): these numbers are mcpscript's limit, not the server's{}",
            r.name,
            if r.limited_by.target_in_process {
                " (the built-in server runs inside mcpscript's process and shares its CPU)"
            } else {
                ""
            }
        )),
        Limiter::Target => Some(format!("load {}: limited by the target ({e})", r.name)),
        Limiter::Network => Some(format!("load {}: limited by the network ({e})", r.name)),
        Limiter::None => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::result::{new_hist, Counts, WorkerReport};

    fn phase() -> PhaseResult {
        PhaseResult {
            name: "p".into(),
            model: ModelKind::Open,
            status: PhaseStatus::Completed,
            intended_rate: Some(100.0),
            counts: Counts { sent: 100, ok: 100, ..Default::default() },
            send_rate: 100.0,
            ..Default::default()
        }
    }

    fn lag(ms: u64) -> SendLag {
        let mut h = new_hist();
        for _ in 0..100 {
            h.saturating_record(ms * 1000);
        }
        SendLag::of(&h)
    }

    #[test]
    fn the_first_side_that_applies_wins() {
        let mut r = phase();
        r.limited_by.mcpscript_cpu = Some(CpuUse::new(50.0, 60.0, 2.0));
        r.limited_by.send_lag = Some(lag(1));
        assess(&mut r);
        assert_eq!(r.limited_by.verdict, Limiter::None, "{:?}", r.limited_by.reasons);
        assert!(r.limited_by.missing.iter().any(|m| m.starts_with("target_cpu")));

        r.counts.errors.insert("transport".into(), 3);
        assess(&mut r);
        assert_eq!(r.limited_by.verdict, Limiter::Network);

        r.counts.errors.insert("rpc_-32000".into(), 5);
        assess(&mut r);
        assert_eq!(r.limited_by.verdict, Limiter::Target);
        assert!(r.limited_by.reasons[0].contains("shed -32000 overloaded"), "{:?}", r.limited_by.reasons);
        assert_eq!(r.limited_by.reasons.len(), 2);

        r.limited_by.send_lag = Some(lag(40));
        assess(&mut r);
        assert_eq!(r.limited_by.verdict, Limiter::Mcpscript);
        assert!(r.limited_by.reasons[0].contains("send lag p99"), "{:?}", r.limited_by.reasons);
        assert!(log_line(&r).unwrap().contains("not the server's"));

        r.limited_by.send_lag = Some(lag(1));
        r.limited_by.mcpscript_cpu = Some(CpuUse::new(190.0, 200.0, 2.0));
        assess(&mut r);
        assert_eq!(r.limited_by.verdict, Limiter::Mcpscript);
        assert!(cell(&r).starts_with("mcpscript (CPU 95% of 2 cores"), "{}", cell(&r));
    }

    #[test]
    fn lag_on_a_machine_busy_with_other_work_says_so() {
        let mut r = phase();
        r.limited_by.send_lag = Some(lag(40));
        r.limited_by.mcpscript_cpu = Some(CpuUse::new(10.0, 20.0, 2.0));
        r.limited_by.machine_busy = Some(0.97);
        assess(&mut r);
        assert_eq!(r.limited_by.verdict, Limiter::Mcpscript);
        assert!(r.limited_by.reasons[1].starts_with("the machine's CPU was 97% busy while mcpscript used 5%"));
        r.limited_by.machine_busy = Some(0.5);
        assess(&mut r);
        assert!(!r.limited_by.reasons.iter().any(|x| x.contains("machine's CPU")), "{:?}", r.limited_by.reasons);
    }

    #[test]
    fn dropped_arrivals_count_against_the_side_that_could_not_keep_up() {
        let mut r = phase();
        r.dropped = 10;
        r.limited_by.send_lag = Some(lag(1));
        assess(&mut r);
        assert_eq!(r.limited_by.verdict, Limiter::Target, "{:?}", r.limited_by.reasons);
        r.limited_by.send_lag = Some(lag(50));
        assess(&mut r);
        assert_eq!(r.limited_by.verdict, Limiter::Mcpscript);
        assert!(r.limited_by.reasons.iter().any(|x| x.contains("10 arrivals dropped while mcpscript")));
    }

    #[test]
    fn failed_workers_and_missing_cpu_are_said() {
        let mut r = phase();
        r.workers = vec![
            WorkerReport { index: 0, failed: true, ..Default::default() },
            WorkerReport { index: 1, ..Default::default() },
        ];
        assess(&mut r);
        assert_eq!(r.limited_by.verdict, Limiter::Mcpscript);
        assert_eq!(r.limited_by.workers, WorkersUse { processes: 2, failed: 1, behind: 0 });
        assert!(r.limited_by.missing[0].contains("sampling was off"), "{:?}", r.limited_by.missing);
    }

    #[test]
    fn a_connect_phase_counts_its_failures_once() {
        let mut r = PhaseResult {
            name: "c".into(),
            model: ModelKind::Connect,
            status: PhaseStatus::Completed,
            ..Default::default()
        };
        r.counts = Counts { sent: 10, ok: 7, errors: [("transport".to_string(), 3)].into(), ..Default::default() };
        r.connect.attempted = 10;
        r.connect.ok = 7;
        r.connect.errors.insert("transport".into(), 3);
        assess(&mut r);
        assert_eq!(r.limited_by.verdict, Limiter::Network);
        assert_eq!(r.limited_by.reasons[0], "3 transport errors (connections refused, reset or closed)");
        assert_eq!(evidence(&r), "3 transport errors");
    }

    #[test]
    fn latency_growth_compares_thirds() {
        let sec =
            |t: u32, p99: f64| TimelineEntry { t, span: 1.0, sent: 10, ok: 10, p50: 1.0, p99, ..Default::default() };
        let flat: Vec<_> = (0..6).map(|t| sec(t, 10.0)).collect();
        assert!(!latency_growth(&flat).unwrap().grew);
        let rising: Vec<_> = (0..6).map(|t| sec(t, 10.0 + 10.0 * t as f64)).collect();
        let g = latency_growth(&rising).unwrap();
        assert_eq!(g.seconds, 2);
        assert!(g.grew && (g.ratio - 55.0 / 15.0).abs() < 1e-9, "{g:?}");
        assert!(latency_growth(&rising[..2]).is_none());
    }

    #[test]
    fn merged_evidence_keeps_the_busier_cpu_and_all_lags() {
        let a = LimitedBy {
            mcpscript_cpu: Some(CpuUse::new(50.0, 60.0, 2.0)),
            send_lag: Some(lag(1)),
            ..Default::default()
        };
        let b = LimitedBy {
            mcpscript_cpu: Some(CpuUse::new(150.0, 160.0, 2.0)),
            send_lag: Some(lag(30)),
            ..Default::default()
        };
        let m = LimitedBy::merged(&a, &b);
        assert_eq!(m.mcpscript_cpu.unwrap().mean_pct, 150.0);
        let l = m.send_lag.unwrap();
        assert_eq!(l.count, 200);
        assert!(l.max_ms >= 30.0 && l.p50_ms <= 1.01, "{l:?}");
    }
}
