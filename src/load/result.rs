//! What a load phase measured: [`PhaseResult`] (counters, errors by kind, latency
//! statistics in milliseconds, per request kind, connect statistics, a per-second timeline,
//! resource samples, server requests by method) as serde types, with every HdrHistogram
//! kept in V2 serialisation (base64) so that results merge exactly: [`merge`] sums
//! counters, merges histograms and aligns timelines by second. Worker processes and
//! `mcpscript merge` of segments use it.
//! Who limited a phase ([`LimitedBy`]) lives in [`bottleneck`](super::bottleneck).

use super::error::LoadError;
use super::plan::ModelKind;
use crate::client::server_requests::RequestCounts;
use crate::script::results::Better;
use base64::Engine as _;
use hdrhistogram::serialization::{Deserializer, Serializer, V2Serializer};
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

pub use super::bottleneck::{LimitedBy, Limiter};

/// Smallest latency a histogram tells apart: 1 us.
pub const HIST_LOW_US: u64 = 1;
/// Largest latency a histogram holds: 60 s (longer ones are clamped to it).
pub const HIST_HIGH_US: u64 = 60_000_000;
/// Significant figures of every latency histogram.
pub const HIST_SIGFIG: u8 = 3;

/// A latency histogram in microseconds, 1 us .. 60 s, 3 significant figures, fixed size.
pub fn new_hist() -> Histogram<u64> {
    // The bounds are constants that hdrhistogram accepts.
    Histogram::new_with_bounds(HIST_LOW_US, HIST_HIGH_US, HIST_SIGFIG).expect("valid histogram bounds")
}

/// V2 serialisation, base64; empty for an empty histogram.
pub fn encode(h: &Histogram<u64>) -> String {
    if h.is_empty() {
        return String::new();
    }
    let mut buf = Vec::with_capacity(256);
    match V2Serializer::new().serialize(h, &mut buf) {
        Ok(_) => base64::engine::general_purpose::STANDARD.encode(&buf),
        Err(_) => String::new(),
    }
}

/// The histogram [`encode`] wrote (an empty string is an empty histogram).
pub fn decode(s: &str) -> Result<Histogram<u64>, LoadError> {
    let mut h = new_hist();
    if s.is_empty() {
        return Ok(h);
    }
    let bytes = base64::engine::general_purpose::STANDARD.decode(s)?;
    let read: Histogram<u64> =
        Deserializer::new().deserialize(&mut bytes.as_slice()).map_err(LoadError::HistogramInvalid)?;
    h.add(&read).map_err(LoadError::HistogramRange)?;
    Ok(h)
}

/// Merges two encoded histograms.
pub fn merge_encoded(a: &str, b: &str) -> Result<String, LoadError> {
    match (a.is_empty(), b.is_empty()) {
        (true, _) => Ok(b.to_string()),
        (_, true) => Ok(a.to_string()),
        _ => {
            let mut h = decode(a)?;
            h.add(decode(b)?).map_err(LoadError::HistogramRange)?;
            Ok(encode(&h))
        }
    }
}

/// Latency statistics in milliseconds (float), the keys thresholds read.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct LatencyStats {
    pub count: u64,
    pub min: f64,
    pub mean: f64,
    pub stddev: f64,
    pub p50: f64,
    pub p90: f64,
    pub p95: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
}

impl LatencyStats {
    pub fn of(h: &Histogram<u64>) -> LatencyStats {
        if h.is_empty() {
            return LatencyStats::default();
        }
        let ms = |us: u64| us as f64 / 1000.0;
        // Each percentile reads the highest value equivalent to its bucket (HdrHistogram's
        // convention), so a percentile is never under-reported.
        LatencyStats {
            count: h.len(),
            min: ms(h.min()),
            mean: h.mean() / 1000.0,
            stddev: h.stdev() / 1000.0,
            p50: ms(h.value_at_quantile(0.50)),
            p90: ms(h.value_at_quantile(0.90)),
            p95: ms(h.value_at_quantile(0.95)),
            p99: ms(h.value_at_quantile(0.99)),
            p999: ms(h.value_at_quantile(0.999)),
            max: ms(h.max()),
        }
    }
}

/// Outcome counters. `sent = ok + errors + timeouts + cancelled` once a phase ended.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Counts {
    pub sent: u64,
    pub ok: u64,
    /// Failed requests by kind: `rpc_-32000`, `transport`, `protocol`, `http_503`, ...
    pub errors: BTreeMap<String, u64>,
    pub timeouts: u64,
    pub cancelled: u64,
    /// Extra attempts of requests (resent after their connection broke or, when asked,
    /// after a timeout). Not part of `sent`: a resent request is sent and ends once.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub resent: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl Counts {
    pub fn add(&mut self, o: &Counts) {
        self.sent += o.sent;
        self.resent += o.resent;
        self.ok += o.ok;
        for (k, v) in &o.errors {
            *self.errors.entry(k.clone()).or_default() += v;
        }
        self.timeouts += o.timeouts;
        self.cancelled += o.cancelled;
    }

    pub fn error_total(&self) -> u64 {
        self.errors.values().sum()
    }

    /// Requests that got an outcome.
    pub fn finished(&self) -> u64 {
        self.ok + self.error_total() + self.timeouts + self.cancelled
    }

    /// Whether `sent = ok + errors + timeouts + cancelled`.
    pub fn balanced(&self) -> bool {
        self.sent == self.finished()
    }
}

/// One request kind of the mix (or the connects of a phase).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct KindResult {
    #[serde(flatten)]
    pub counts: Counts,
    pub latency: LatencyStats,
    /// V2 + base64; empty when nothing was recorded.
    #[serde(default)]
    pub histogram: String,
}

impl KindResult {
    pub fn from_hist(counts: Counts, h: &Histogram<u64>) -> KindResult {
        KindResult { counts, latency: LatencyStats::of(h), histogram: encode(h) }
    }

    fn merge(&mut self, o: &KindResult) -> Result<(), LoadError> {
        self.counts.add(&o.counts);
        self.histogram = merge_encoded(&self.histogram, &o.histogram)?;
        self.latency = LatencyStats::of(&decode(&self.histogram)?);
        Ok(())
    }
}

/// One second of a phase.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct TimelineEntry {
    /// Seconds since the phase's load started: this entry covers [t, t + span).
    pub t: u32,
    pub span: f64,
    pub sent: u64,
    pub ok: u64,
    pub errors: u64,
    pub timeouts: u64,
    pub cancelled: u64,
    pub dropped: u64,
    /// Extra attempts (see [`Counts::resent`]).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub resent: u64,
    /// Replies (ok + errors) per second.
    pub throughput: f64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
    /// Sessions open at the end of the second (summed over processes).
    pub open_sessions: i64,
    /// This second's latencies (V2 + base64), so timelines merge exactly.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub hist: String,
}

impl TimelineEntry {
    fn merge(&mut self, o: &TimelineEntry) -> Result<(), LoadError> {
        self.span = self.span.max(o.span);
        self.sent += o.sent;
        self.ok += o.ok;
        self.errors += o.errors;
        self.timeouts += o.timeouts;
        self.cancelled += o.cancelled;
        self.dropped += o.dropped;
        self.resent += o.resent;
        self.open_sessions += o.open_sessions;
        self.hist = merge_encoded(&self.hist, &o.hist)?;
        self.refresh()
    }

    /// Recomputes throughput and percentiles from the counters and `hist`.
    pub fn refresh(&mut self) -> Result<(), LoadError> {
        self.throughput = if self.span > 0.0 { (self.ok + self.errors) as f64 / self.span } else { 0.0 };
        let l = LatencyStats::of(&decode(&self.hist)?);
        (self.p50, self.p90, self.p99, self.max) = (l.p50, l.p90, l.p99, l.max);
        Ok(())
    }
}

/// Establishing the sessions: connect + initialize.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ConnectResult {
    pub attempted: u64,
    pub ok: u64,
    pub failed: u64,
    /// Failures by kind (`transport`, `timeout`, `protocol`, `rpc_-32000`, ...).
    pub errors: BTreeMap<String, u64>,
    /// Connect + initialize latency in ms.
    pub latency: LatencyStats,
    /// Seconds from the first attempt to the last outcome.
    pub duration_s: f64,
    /// Sessions established per second over `duration_s`.
    pub rate: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_error: Option<String>,
    /// Sessions re-established during the load after their connection failed.
    #[serde(default)]
    pub reconnects: u64,
    #[serde(default)]
    pub histogram: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub timeline: Vec<TimelineEntry>,
}

impl ConnectResult {
    pub fn from_kind(k: &KindResult, duration_s: f64, timeline: Vec<TimelineEntry>) -> ConnectResult {
        let c = &k.counts;
        let mut errors = c.errors.clone();
        if c.timeouts > 0 {
            errors.insert("timeout".into(), c.timeouts);
        }
        if c.cancelled > 0 {
            errors.insert("cancelled".into(), c.cancelled);
        }
        ConnectResult {
            attempted: c.sent,
            ok: c.ok,
            failed: c.sent - c.ok.min(c.sent),
            errors,
            latency: k.latency.clone(),
            duration_s,
            rate: if duration_s > 0.0 { c.ok as f64 / duration_s } else { 0.0 },
            first_error: None,
            reconnects: 0,
            histogram: k.histogram.clone(),
            timeline,
        }
    }

    fn merge(&mut self, o: &ConnectResult) -> Result<(), LoadError> {
        self.attempted += o.attempted;
        self.ok += o.ok;
        self.failed += o.failed;
        for (k, v) in &o.errors {
            *self.errors.entry(k.clone()).or_default() += v;
        }
        self.duration_s = self.duration_s.max(o.duration_s);
        self.rate = if self.duration_s > 0.0 { self.ok as f64 / self.duration_s } else { 0.0 };
        self.first_error = self.first_error.take().or_else(|| o.first_error.clone());
        self.reconnects += o.reconnects;
        self.histogram = merge_encoded(&self.histogram, &o.histogram)?;
        self.latency = LatencyStats::of(&decode(&self.histogram)?);
        self.timeline = merge_timelines(&self.timeline, &o.timeline)?;
        Ok(())
    }
}

/// Whose process a [`ProcessSeries`] samples.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ProcessRole {
    /// The process that runs the script and the phase.
    Coordinator,
    /// A worker process of the phase.
    Worker,
    /// A process of the target (and its children).
    Target,
    /// A process `metrics::sample` watches.
    #[default]
    Process,
}

impl ProcessRole {
    pub fn as_str(self) -> &'static str {
        match self {
            ProcessRole::Coordinator => "coordinator",
            ProcessRole::Worker => "worker",
            ProcessRole::Target => "target",
            ProcessRole::Process => "process",
        }
    }
}

impl std::fmt::Display for ProcessRole {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One process's samples.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ProcessSeries {
    pub pid: u32,
    pub role: ProcessRole,
    /// Seconds since sampling started, one per sample.
    pub t: Vec<f64>,
    pub rss_bytes: Vec<u64>,
    /// CPU used since the previous sample, in % of one core.
    pub cpu_pct: Vec<f64>,
    pub peak_rss_bytes: u64,
    pub mean_cpu_pct: f64,
}

/// Resource use sampled while a phase ran.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Resources {
    pub interval_s: f64,
    pub processes: Vec<ProcessSeries>,
    /// Highest sum over samples of coordinator + worker RSS.
    pub mcpscript_peak_rss_bytes: u64,
    /// Highest sum over samples of the target processes' RSS (0 when none was sampled).
    pub target_peak_rss_bytes: u64,
    /// Highest sum over samples of coordinator + worker PSS (proportional set size: a page
    /// mapped by N processes counts 1/N in each, so the mcpscript binary's pages, mapped by
    /// every worker, count once where the RSS sum counts them per process); 0 when
    /// `/proc/PID/smaps_rollup` is unreadable.
    #[serde(default)]
    pub mcpscript_peak_pss_bytes: u64,
    /// The same for the target processes.
    #[serde(default)]
    pub target_peak_pss_bytes: u64,
    /// Mean CPU over the sampled time, in % of one core (coordinator + workers; target).
    pub mcpscript_mean_cpu_pct: f64,
    pub target_mean_cpu_pct: f64,
    /// Highest CPU of one full sampling interval, in % of one core.
    #[serde(default)]
    pub mcpscript_peak_cpu_pct: f64,
    #[serde(default)]
    pub target_peak_cpu_pct: f64,
    /// Busy share (0..1) of the whole machine's CPU time (every process) while sampling ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub machine_busy_fraction: Option<f64>,
}

/// How one worker process (or segment) of a phase fared.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct WorkerReport {
    pub index: u32,
    pub pid: u32,
    pub sessions: u64,
    /// `ok`, or what went wrong (`exited with signal 9 before reporting`).
    pub status: String,
    pub failed: bool,
    /// Its open-model scheduler fell behind (send lag p99 over the bound of
    /// [`LimitedBy`](super::bottleneck::LimitedBy)).
    #[serde(default, skip_serializing_if = "is_false")]
    pub behind: bool,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// `load::connect`'s `ping_sample`: one `ping` on each of a sample of the held sessions.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct PingResult {
    pub attempted: u64,
    pub ok: u64,
    pub failed: u64,
    /// Failures by kind (`transport`, `timeout`, `rpc_-32000`, ...).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub errors: BTreeMap<String, u64>,
    /// Ping round trips in ms (answered pings only).
    pub latency: LatencyStats,
    #[serde(default)]
    pub histogram: String,
}

impl PingResult {
    fn merge(&mut self, o: &PingResult) -> Result<(), LoadError> {
        self.attempted += o.attempted;
        self.ok += o.ok;
        self.failed += o.failed;
        for (k, v) in &o.errors {
            *self.errors.entry(k.clone()).or_default() += v;
        }
        self.histogram = merge_encoded(&self.histogram, &o.histogram)?;
        self.latency = LatencyStats::of(&decode(&self.histogram)?);
        Ok(())
    }
}

/// How a phase ended, from best to worst: a merge keeps the worse of its shares'.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum PhaseStatus {
    /// Ran to its end.
    #[default]
    Completed,
    /// A worker process failed; what it measured until then is kept.
    Partial,
    /// Ctrl-C or the script's timeout.
    Cancelled,
    /// The target could not be reached, or no worker process started.
    Failed,
}

impl PhaseStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            PhaseStatus::Completed => "completed",
            PhaseStatus::Partial => "partial",
            PhaseStatus::Cancelled => "cancelled",
            PhaseStatus::Failed => "failed",
        }
    }
}

impl std::fmt::Display for PhaseStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Everything one load phase measured.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct PhaseResult {
    pub name: String,
    pub model: ModelKind,
    pub target: String,
    pub status: PhaseStatus,
    pub started_at: String,
    /// Sessions the plan asked for.
    pub sessions: u64,
    #[serde(flatten)]
    pub counts: Counts,
    /// Arrivals an open model dropped because `max_inflight` requests were in flight.
    pub dropped: u64,
    /// `(errors + timeouts) / sent`.
    pub error_rate: f64,
    /// Open model: the mean arrival rate asked for (req/s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub intended_rate: Option<f64>,
    /// Replies (ok + errors) per second of load.
    pub throughput: f64,
    /// Requests sent per second of load.
    pub send_rate: f64,
    /// Seconds of load (without establishing sessions or draining).
    pub duration_s: f64,
    /// Seconds after the load window until the last request in flight had its outcome.
    /// Throughput counts the part beyond the phase's ordinary reply time (the p99 of its
    /// first third, when latency did not grow over the phase; else the whole drain): a
    /// backlog worked off after the window does not pass for capacity, while the last
    /// requests of a server that keeps up, answered as fast as any, do not lower it.
    #[serde(default)]
    pub drain_s: f64,
    pub latency: LatencyStats,
    pub per_kind: BTreeMap<String, KindResult>,
    /// The MCP method behind each label of `per_kind` (`echo` -> `tools/call`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub methods: BTreeMap<String, String>,
    pub connect: ConnectResult,
    pub timeline: Vec<TimelineEntry>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<Resources>,
    /// All kinds together (V2 + base64).
    #[serde(default)]
    pub histogram: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub workers: Vec<WorkerReport>,
    /// Segments (I, N) this result covers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub segments: Vec<(u32, u32)>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// Prefix of the metrics this phase exports (`PREFIX_throughput`, ...), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub export: Option<String>,
    /// What the sessions did about faults (policy and counts), when the phase ran in one
    /// process or its shares were merged.
    #[serde(default)]
    pub resilience: ResilienceReport,
    /// Recovery from each chaos action taken while the load ran (kill, restart, fault).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub recovery: Vec<Recovery>,
    /// Who limited the phase (mcpscript, the target, the network or nothing), why, and
    /// the evidence: see [`LimitedBy`].
    #[serde(default)]
    pub limited_by: LimitedBy,
    /// Connect phases with `ping_sample`: pings sent on a sample of the held sessions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ping: Option<PingResult>,
    /// Requests the server sent the sessions, by method (`sampling/createMessage`,
    /// `elicitation/create`, `roots/list`, `ping`; past 32 methods, `other`): `received`,
    /// `answered` (with a result) and `refused` (with an error: not configured).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub server_requests: BTreeMap<String, RequestCounts>,
}

/// The resilience policy a phase ran with, and what it did.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ResilienceReport {
    /// Sessions reopened their broken connections.
    pub reconnect: bool,
    /// Methods resent when their connection broke.
    pub resend: Vec<String>,
    pub resend_on_timeout: bool,
    /// Extra attempts made (see [`Counts::resent`]).
    pub resent: u64,
    /// Sessions re-established during the load.
    pub reconnects: u64,
    /// Connections that broke during the load.
    pub broken: u64,
    /// Circuit breaker: whether one was used, requests it refused (never sent) and times it opened.
    pub breaker: bool,
    pub short_circuited: u64,
    pub breaker_opened: u64,
}

/// Recovery from one chaos action during load.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Recovery {
    /// What was done (`kill all`, `restart worker 1`, `fault drop:...`).
    pub event: String,
    /// Seconds since the load started.
    pub at_s: f64,
    /// Fraction of sessions that had to be back (default 0.99).
    pub fraction: f64,
    /// Seconds from the event until that fraction was re-established; `None`: not within the phase.
    pub recovery_s: Option<f64>,
    /// Sessions whose connection broke after the event (before the next one).
    pub sessions_affected: u64,
    pub sessions_recovered: u64,
    pub sessions_lost: u64,
    /// Errors + timeouts, and resends, in the timeline seconds from the event to the recovery.
    pub requests_failed: u64,
    pub requests_resent: u64,
    /// Replies per second, `(t, throughput)`, from 3 s before the event to 3 s after recovery.
    pub throughput: Vec<(u32, f64)>,
}

/// A metric derived from a phase, with the per-second values behind it (one per whole
/// second of the timeline that sent requests; none for connect and memory figures), which
/// give the regression detector an interval and a rank test.
#[derive(Debug, Clone, PartialEq)]
pub struct ExportedMetric {
    pub name: String,
    pub value: f64,
    pub unit: &'static str,
    pub better: Better,
    pub samples: Vec<f64>,
}

impl PhaseResult {
    /// The metrics a phase with an export prefix contributes to regression detection.
    pub fn exported_metrics(&self) -> Vec<ExportedMetric> {
        let Some(p) = &self.export else { return vec![] };
        let metric = |suffix: &str, value: f64, unit, better, samples| ExportedMetric {
            name: format!("{p}_{suffix}"),
            value,
            unit,
            better,
            samples,
        };
        let seconds = || self.timeline.iter().filter(|e| e.span >= 0.999 && e.sent > 0);
        let answered = || seconds().filter(|e| e.ok + e.errors > 0);
        let mut m = vec![];
        if self.model == ModelKind::Connect {
            let c = &self.connect;
            m.push(metric("connect_rate", c.rate, "sessions/s", Better::Higher, vec![]));
            m.push(metric("connect_p50_ms", c.latency.p50, "ms", Better::Lower, vec![]));
            m.push(metric("connect_p99_ms", c.latency.p99, "ms", Better::Lower, vec![]));
            m.push(metric("connect_failed", c.failed as f64, "sessions", Better::Lower, vec![]));
        } else {
            let rates = seconds().map(|e| e.throughput).collect();
            m.push(metric("throughput", self.throughput, "req/s", Better::Higher, rates));
            m.push(metric("p50_ms", self.latency.p50, "ms", Better::Lower, answered().map(|e| e.p50).collect()));
            m.push(metric("p99_ms", self.latency.p99, "ms", Better::Lower, answered().map(|e| e.p99).collect()));
            let errors = seconds().map(|e| (e.errors + e.timeouts) as f64 / e.sent as f64).collect();
            m.push(metric("error_rate", self.error_rate, "ratio", Better::Lower, errors));
        }
        if let Some(r) = &self.resources {
            if r.mcpscript_peak_rss_bytes > 0 {
                let mb = r.mcpscript_peak_rss_bytes as f64 / 1e6;
                m.push(metric("mcpscript_rss_mb", mb, "MB", Better::Lower, vec![]));
            }
            if r.target_peak_rss_bytes > 0 {
                m.push(metric("target_rss_mb", r.target_peak_rss_bytes as f64 / 1e6, "MB", Better::Lower, vec![]));
            }
        }
        m
    }

    /// Recomputes the derived numbers (rates, error rate, latency) from counters and histograms.
    pub fn refresh(&mut self) -> Result<(), LoadError> {
        let c = &self.counts;
        let replies = c.ok + c.error_total();
        let d = self.duration_s;
        let ordinary = match super::bottleneck::latency_growth(&self.timeline) {
            Some(g) if !g.grew => g.first_p99_ms / 1e3,
            // Latency that grew over the phase is a backlog building: its drain counts whole.
            _ => 0.0,
        };
        let active = d + (self.drain_s - ordinary).max(0.0);
        self.throughput = if active > 0.0 { replies as f64 / active } else { 0.0 };
        self.send_rate = if d > 0.0 { c.sent as f64 / d } else { 0.0 };
        self.error_rate = if c.sent > 0 { (c.error_total() + c.timeouts) as f64 / c.sent as f64 } else { 0.0 };
        self.latency = LatencyStats::of(&decode(&self.histogram)?);
        Ok(())
    }

    /// Whether `sent = ok + errors + timeouts + cancelled` holds, overall and per kind.
    pub fn balanced(&self) -> bool {
        self.counts.balanced() && self.per_kind.values().all(|k| k.counts.balanced())
    }

    /// Adds a note once.
    pub fn note(&mut self, n: impl Into<String>) {
        let n = n.into();
        if !self.notes.contains(&n) {
            self.notes.push(n);
        }
    }
}

/// The seconds of shares that ran at the same time, merged by second.
#[derive(Default)]
pub struct TimelineMerge(BTreeMap<u32, TimelineEntry>);

impl TimelineMerge {
    /// Adds one share's second. Fails only on a histogram that does not decode: that
    /// second then has the share's counts but not its latencies.
    pub fn add(&mut self, e: TimelineEntry) -> Result<(), LoadError> {
        match self.0.entry(e.t) {
            std::collections::btree_map::Entry::Occupied(mut x) => x.get_mut().merge(&e),
            std::collections::btree_map::Entry::Vacant(v) => {
                v.insert(e);
                Ok(())
            }
        }
    }

    /// The merged seconds, in order.
    pub fn into_timeline(self) -> Vec<TimelineEntry> {
        self.0.into_values().collect()
    }
}

fn merge_timelines(a: &[TimelineEntry], b: &[TimelineEntry]) -> Result<Vec<TimelineEntry>, LoadError> {
    let mut m = TimelineMerge::default();
    for e in a.iter().chain(b) {
        m.add(e.clone())?;
    }
    Ok(m.into_timeline())
}

/// Combines the results of shares of one phase that ran at the same time (worker
/// processes, or segments on other machines): counters summed, histograms merged
/// losslessly, timelines aligned by second, rates recomputed over the longer duration,
/// and who limited the phase judged again from the shares' evidence (the busier share's
/// CPU, the send lags merged; see [`LimitedBy::merged`]).
pub fn merge(a: &PhaseResult, b: &PhaseResult) -> Result<PhaseResult, LoadError> {
    let mut m = a.clone();
    m.sessions += b.sessions;
    m.counts.add(&b.counts);
    m.dropped += b.dropped;
    m.intended_rate = match (a.intended_rate, b.intended_rate) {
        (Some(x), Some(y)) => Some(x + y),
        (x, y) => x.or(y),
    };
    m.duration_s = a.duration_s.max(b.duration_s);
    m.drain_s = a.drain_s.max(b.drain_s);
    for (k, v) in &b.methods {
        m.methods.entry(k.clone()).or_insert_with(|| v.clone());
    }
    for (k, v) in &b.per_kind {
        match m.per_kind.get_mut(k) {
            Some(x) => x.merge(v)?,
            None => {
                m.per_kind.insert(k.clone(), v.clone());
            }
        }
    }
    m.connect.merge(&b.connect)?;
    m.resilience.resent += b.resilience.resent;
    m.resilience.reconnects += b.resilience.reconnects;
    m.resilience.broken += b.resilience.broken;
    m.resilience.short_circuited += b.resilience.short_circuited;
    m.resilience.breaker_opened += b.resilience.breaker_opened;
    m.timeline = merge_timelines(&a.timeline, &b.timeline)?;
    m.histogram = merge_encoded(&a.histogram, &b.histogram)?;
    m.resources = match (&a.resources, &b.resources) {
        (Some(x), Some(y)) => {
            let mut r = x.clone();
            r.processes.extend(y.processes.iter().cloned());
            r.mcpscript_peak_rss_bytes += y.mcpscript_peak_rss_bytes;
            r.target_peak_rss_bytes += y.target_peak_rss_bytes;
            r.mcpscript_peak_pss_bytes += y.mcpscript_peak_pss_bytes;
            r.target_peak_pss_bytes += y.target_peak_pss_bytes;
            r.mcpscript_mean_cpu_pct += y.mcpscript_mean_cpu_pct;
            r.target_mean_cpu_pct += y.target_mean_cpu_pct;
            r.mcpscript_peak_cpu_pct += y.mcpscript_peak_cpu_pct;
            r.target_peak_cpu_pct += y.target_peak_cpu_pct;
            // Segments on several machines: the busier machine.
            r.machine_busy_fraction = match (x.machine_busy_fraction, y.machine_busy_fraction) {
                (Some(p), Some(q)) => Some(p.max(q)),
                (p, q) => p.or(q),
            };
            Some(r)
        }
        (x, y) => x.clone().or_else(|| y.clone()),
    };
    m.workers.extend(b.workers.iter().cloned());
    m.segments.extend(b.segments.iter().copied());
    m.segments.sort_unstable();
    m.segments.dedup();
    for n in &b.notes {
        m.note(n.clone());
    }
    m.status = m.status.max(b.status);
    if m.started_at.is_empty() || (!b.started_at.is_empty() && b.started_at < m.started_at) {
        m.started_at = b.started_at.clone();
    }
    m.ping = match (&a.ping, &b.ping) {
        (Some(x), Some(y)) => {
            let mut p = x.clone();
            p.merge(y)?;
            Some(p)
        }
        (x, y) => x.clone().or_else(|| y.clone()),
    };
    for (k, v) in &b.server_requests {
        m.server_requests.entry(k.clone()).or_default().add(v);
    }
    m.limited_by = LimitedBy::merged(&a.limited_by, &b.limited_by);
    m.refresh()?;
    super::bottleneck::assess(&mut m);
    Ok(m)
}

/// Merges any number of shares (see [`merge`]); `None` for none.
pub fn merge_all<'a>(parts: impl IntoIterator<Item = &'a PhaseResult>) -> Result<Option<PhaseResult>, LoadError> {
    let mut acc: Option<PhaseResult> = None;
    for p in parts {
        acc = Some(match acc {
            None => p.clone(),
            Some(a) => merge(&a, p)?,
        });
    }
    Ok(acc)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(values_us: &[u64], t: u32) -> PhaseResult {
        let mut h = new_hist();
        values_us.iter().for_each(|v| h.saturating_record(*v));
        let counts = Counts {
            sent: values_us.len() as u64 + 2,
            ok: values_us.len() as u64,
            timeouts: 1,
            cancelled: 1,
            ..Default::default()
        };
        let mut tl =
            TimelineEntry { t, span: 1.0, sent: counts.sent, ok: counts.ok, hist: encode(&h), ..Default::default() };
        tl.refresh().unwrap();
        let mut r = PhaseResult {
            name: "p".into(),
            model: ModelKind::Closed,
            status: PhaseStatus::Completed,
            sessions: 1,
            counts: counts.clone(),
            duration_s: 1.0,
            per_kind: [("ping".to_string(), KindResult::from_hist(counts, &h))].into(),
            timeline: vec![tl],
            histogram: encode(&h),
            ..Default::default()
        };
        r.refresh().unwrap();
        r
    }

    #[test]
    fn histograms_round_trip_and_merge_exactly() {
        let mut h = new_hist();
        for v in [1, 50, 999, 1_000, 20_000, 61_000_000] {
            h.saturating_record(v);
        }
        let back = decode(&encode(&h)).unwrap();
        assert_eq!(back, h);
        assert_eq!(back.max(), h.max());
        assert!(decode("").unwrap().is_empty());
        assert!(decode("!!").is_err());
    }

    #[test]
    fn closed_sets_keep_the_strings_of_older_results() {
        fn check<T: Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug>(v: T, s: &str) {
            assert_eq!(serde_json::to_value(&v).unwrap(), s);
            assert_eq!(serde_json::from_value::<T>(s.into()).unwrap(), v);
        }
        use PhaseStatus::*;
        for (v, s) in [(Completed, "completed"), (Partial, "partial"), (Cancelled, "cancelled"), (Failed, "failed")] {
            check(v, s);
            assert_eq!(v.to_string(), s);
        }
        assert!(Completed < Partial && Partial < Cancelled && Cancelled < Failed);
        for (v, s) in [(ModelKind::Closed, "closed"), (ModelKind::Open, "open"), (ModelKind::Connect, "connect")] {
            check(v, s);
        }
        for v in [ProcessRole::Coordinator, ProcessRole::Worker, ProcessRole::Target, ProcessRole::Process] {
            check(v, v.as_str());
        }
    }

    #[test]
    fn a_drain_within_the_ordinary_reply_time_keeps_the_throughput() {
        // 9 s at 100 req/s, every reply 200 ms (p99 of the first third: 200 ms).
        let mut h = new_hist();
        (0..100).for_each(|_| h.saturating_record(200_000));
        let timeline: Vec<TimelineEntry> = (0..9)
            .map(|t| {
                let mut e = TimelineEntry { t, span: 1.0, sent: 100, ok: 100, hist: encode(&h), ..Default::default() };
                e.refresh().unwrap();
                e
            })
            .collect();
        let mut r = PhaseResult {
            counts: Counts { sent: 900, ok: 900, ..Default::default() },
            duration_s: 9.0,
            timeline,
            ..Default::default()
        };
        // The last requests answered in their ordinary 200 ms: the full 100 req/s.
        r.drain_s = 0.2;
        r.refresh().unwrap();
        assert!((r.throughput - 100.0).abs() < 0.5, "{}", r.throughput);
        // A backlog worked off for 1.8 s past it: 900 replies in 10.8 s.
        r.drain_s = 2.0;
        r.refresh().unwrap();
        assert!((r.throughput - 900.0 / 10.8).abs() < 0.5, "{}", r.throughput);
        // Latency that grew over the phase (a backlog building): the whole drain counts.
        let mut slow = new_hist();
        (0..100).for_each(|_| slow.saturating_record(1_500_000));
        for e in r.timeline.iter_mut().skip(6) {
            e.hist = encode(&slow);
            e.refresh().unwrap();
        }
        r.drain_s = 1.6;
        r.refresh().unwrap();
        assert!((r.throughput - 900.0 / 10.6).abs() < 0.01, "{}", r.throughput);
        // Without a timeline to tell the ordinary reply time, the whole drain counts.
        r.timeline.clear();
        r.drain_s = 0.2;
        r.refresh().unwrap();
        assert!((r.throughput - 900.0 / 9.2).abs() < 0.01, "{}", r.throughput);
    }

    #[test]
    fn merge_sums_counters_and_aligns_timelines() {
        let a = part(&[1000, 2000, 3000], 0);
        let b = part(&[4000], 0);
        let c = part(&[5000], 1);
        let m = merge_all([&a, &b, &c]).unwrap().unwrap();
        assert_eq!(m.counts.sent, 5 + 3 * 2);
        assert_eq!(m.counts.ok, 5);
        assert!(m.balanced());
        assert_eq!(m.latency.count, 5);
        assert!((m.latency.max - 5.0).abs() < 0.01);
        assert_eq!(m.timeline.len(), 2);
        assert_eq!(m.timeline[0].ok, 4);
        assert!((m.timeline[0].max - 4.0).abs() < 0.01);
        assert_eq!(m.per_kind["ping"].latency.count, 5);
        assert_eq!(m.sessions, 3);
    }

    #[test]
    fn merge_judges_who_limited_the_whole_again() {
        use crate::load::bottleneck::{assess, CpuUse, SendLag};
        let lag = |us: u64| {
            let mut h = new_hist();
            (0..100).for_each(|_| h.saturating_record(us));
            Some(SendLag::of(&h))
        };
        let mut a = part(&[1000], 0);
        a.model = ModelKind::Open;
        a.limited_by.send_lag = lag(500);
        a.limited_by.mcpscript_cpu = Some(CpuUse::new(20.0, 30.0, 2.0));
        a.ping = Some(PingResult { attempted: 2, ok: 2, ..Default::default() });
        a.counts.timeouts = 0;
        a.counts.sent -= 1;
        let mut b = a.clone();
        b.limited_by.send_lag = lag(50_000);
        b.ping = Some(PingResult { attempted: 3, ok: 1, failed: 2, ..Default::default() });
        let asked = |received, refused| RequestCounts { received, answered: received - refused, refused };
        a.server_requests = [("sampling/createMessage".to_string(), asked(4, 1))].into();
        b.server_requests =
            [("sampling/createMessage".to_string(), asked(2, 0)), ("roots/list".to_string(), asked(1, 1))].into();
        assess(&mut a);
        assess(&mut b);
        assert_eq!(a.limited_by.verdict, Limiter::None, "{:?}", a.limited_by.reasons);
        assert_eq!(b.limited_by.verdict, Limiter::Mcpscript);
        let m = merge(&a, &a).unwrap();
        assert_eq!(m.limited_by.verdict, Limiter::None);
        assert_eq!(m.limited_by.send_lag.as_ref().unwrap().count, 200);
        // One share that fell behind makes the whole mcpscript's limit: its lags are in the p99.
        let m = merge(&a, &b).unwrap();
        assert_eq!(m.limited_by.verdict, Limiter::Mcpscript, "{:?}", m.limited_by.reasons);
        assert!(m.limited_by.send_lag.as_ref().unwrap().p99_ms >= 49.0);
        assert_eq!(m.ping.as_ref().map(|p| (p.attempted, p.ok, p.failed)), Some((5, 3, 2)));
        assert_eq!(m.server_requests["sampling/createMessage"], asked(6, 1));
        assert_eq!(m.server_requests["roots/list"], asked(1, 1));
    }
}
