//! What report.html shows, as a view model built from the result tree: the headline,
//! the scenario tree, one view per load phase with its charts (latency by percentile on a
//! "nines" axis, per-second timelines, memory), scaling and degradation curves, the
//! regression table with sparklines, the execution lanes, overhead and coverage. Numbers
//! stay raw (the template formats them); charts are finished SVG from [`super::svg`].

use super::svg::{self, Axis, AxisKind, Bar, Lane, LineChart, Series, PALETTE};
use crate::load::result::{decode, PhaseResult, PhaseStatus};
use crate::load::ModelKind;
use crate::regress::{Comparison, MetricComparison, Severity, Verdict};
use crate::script::results::{Better, Overhead, RunResults, ScenarioResult, StageResult, Status};
use crate::util::human;
use serde::Serialize;

/// Points of a latency percentile curve at most (before decimation).
const CURVE_TICKS: u32 = 5;

#[derive(Serialize)]
pub(super) struct Page {
    title: String,
    run_id: String,
    status: &'static str,
    passed: bool,
    verdict_note: Option<String>,
    started_at: String,
    finished_at: String,
    duration_ms: f64,
    target: String,
    version: String,
    suite: Option<SuiteView>,
    summary: crate::script::results::Summary,
    regressions: Option<RegressionCounts>,
    scenarios: Vec<ScenarioView>,
    phases: Vec<PhaseView>,
    curves: Vec<CurveSet>,
    regression: Option<RegressionView>,
    timeline: Option<String>,
    not_run: Vec<NotRun>,
    overhead: Option<OverheadView>,
    coverage: Option<CoverageView>,
}

#[derive(Serialize)]
struct SuiteView {
    name: String,
    file: String,
    profile: String,
    parallelism: usize,
}

#[derive(Serialize)]
struct RegressionCounts {
    critical: usize,
    high: usize,
    medium: usize,
    low: usize,
    total: usize,
    improvements: usize,
    fails: bool,
}

#[derive(Serialize)]
struct ScenarioView {
    node: NodeView,
    file: String,
    error: Option<ErrorView>,
    params: Vec<(String, String)>,
    logs: Vec<(f64, String)>,
    logs_more: usize,
    worker: Option<usize>,
    reason: Option<String>,
    depends_on: Vec<String>,
}

#[derive(Serialize)]
struct ErrorView {
    kind: String,
    message: String,
    place: String,
    hint: Option<String>,
    stack: Vec<String>,
}

#[derive(Serialize)]
struct NodeView {
    name: String,
    status: &'static str,
    open: bool,
    duration_ms: f64,
    passed: u64,
    failed: u64,
    error: Option<String>,
    checks: Vec<CheckView>,
    metrics: Vec<MetricView>,
    phases: Vec<PhaseRef>,
    children: Vec<NodeView>,
}

#[derive(Serialize)]
struct CheckView {
    name: String,
    kind: &'static str,
    passed: u64,
    failed: u64,
    failures: Vec<String>,
}

#[derive(Serialize)]
struct MetricView {
    name: String,
    value: f64,
    unit: Option<String>,
    better: &'static str,
}

#[derive(Serialize)]
struct PhaseRef {
    id: String,
    name: String,
    model: String,
    throughput: f64,
    p99: f64,
    error_rate: f64,
    /// Who limited the phase: `mcpscript`, `target`, `network` or `none` (empty: not judged).
    limited_by: &'static str,
}

#[derive(Serialize)]
struct PhaseView {
    id: String,
    path: String,
    name: String,
    model: String,
    status: String,
    ok: bool,
    sessions: u64,
    intended_rate: Option<f64>,
    sent: u64,
    errors: u64,
    timeouts: u64,
    dropped: u64,
    error_rate: f64,
    throughput: f64,
    duration_s: f64,
    latency: crate::load::result::LatencyStats,
    connect_rate: f64,
    connect_p99: f64,
    connect_failed: u64,
    error_kinds: Vec<(String, u64)>,
    /// What the server asked the phase's sessions, by method.
    server_requests: Vec<ServerRequestView>,
    peak_rss: Option<f64>,
    notes: Vec<String>,
    recovery: Vec<RecoveryView>,
    charts: Vec<String>,
    /// Who limited the phase (`mcpscript`, `target`, `network`, `none`; empty for a result
    /// written before phases were judged), the evidence in a few words, and every reason.
    limited_by: &'static str,
    limited_by_evidence: String,
    limited_by_reasons: Vec<String>,
}

#[derive(Serialize)]
struct ServerRequestView {
    method: String,
    received: u64,
    answered: u64,
    refused: u64,
}

#[derive(Serialize)]
struct RecoveryView {
    event: String,
    at_s: f64,
    recovery_s: Option<f64>,
    affected: u64,
    recovered: u64,
    lost: u64,
    failed: u64,
}

#[derive(Serialize)]
struct CurveSet {
    scenario: String,
    kind: &'static str,
    charts: Vec<String>,
}

#[derive(Serialize)]
struct RegressionView {
    baseline: String,
    runs: usize,
    fail_on: Option<&'static str>,
    rows: Vec<RowView>,
}

#[derive(Serialize)]
struct RowView {
    scenario: String,
    metric: String,
    unit: Option<String>,
    better: &'static str,
    baseline: Option<f64>,
    current: Option<f64>,
    diff_pct: Option<f64>,
    z: Option<f64>,
    severity: Option<&'static str>,
    verdict: &'static str,
    arrow: &'static str,
    mann_whitney_p: Option<f64>,
    welch_p: Option<f64>,
    notes: String,
    spark: String,
}

#[derive(Serialize)]
struct NotRun {
    name: String,
    status: &'static str,
    reason: String,
}

#[derive(Serialize)]
struct OverheadView {
    o: Overhead,
    critical_path: String,
}

#[derive(Serialize)]
struct CoverageView {
    methods: Option<String>,
    transports: Vec<String>,
    error_classes: Vec<(String, u64)>,
}

fn status_color(s: Status) -> &'static str {
    match s {
        Status::Passed => svg::GREEN,
        Status::Skipped => svg::GREY,
        Status::Failed | Status::Timeout | Status::Cancelled => svg::RED,
    }
}

fn better_str(b: Better) -> &'static str {
    match b {
        Better::Higher => "higher",
        Better::Lower => "lower",
        Better::None => "none",
    }
}

fn finite(x: Option<f64>) -> Option<f64> {
    x.filter(|v| v.is_finite())
}

impl Page {
    pub(super) fn of(r: &RunResults) -> Page {
        let mut phases = Vec::new();
        let mut curves = Vec::new();
        let scenarios = r.scenarios.iter().map(|s| scenario_view(s, &mut phases, &mut curves)).collect();
        let name =
            r.suite.as_ref().map(|s| s.name.clone()).unwrap_or_else(|| {
                r.scenarios.first().map(|s| s.root.name.clone()).unwrap_or_else(|| "mcpscript".into())
            });
        let overhead = r
            .framework
            .as_ref()
            .or(r.suite.as_ref().map(|s| &s.overhead))
            .map(|o| OverheadView { o: o.clone(), critical_path: o.critical_path.join(" \u{2192} ") });
        Page {
            title: format!("{name} \u{2014} {}", r.run_id),
            run_id: r.run_id.clone(),
            status: r.status.as_str(),
            passed: r.status == Status::Passed && !r.regression.as_ref().is_some_and(Comparison::fails),
            verdict_note: r
                .regression
                .as_ref()
                .filter(|c| c.fails())
                .and_then(|c| c.fail_on)
                .map(|l| format!("failed on regressions at {} severity or above", l.as_str())),
            started_at: r.started_at.clone(),
            finished_at: r.finished_at.clone(),
            duration_ms: r.duration_ms,
            target: r.target.clone(),
            version: r.mcpscript_version.clone(),
            suite: r.suite.as_ref().map(|s| SuiteView {
                name: s.name.clone(),
                file: s.file.clone(),
                profile: s.profile.clone(),
                parallelism: s.parallelism,
            }),
            summary: r.summary.clone(),
            regressions: r.regression.as_ref().map(|c| RegressionCounts {
                critical: c.regressions.critical,
                high: c.regressions.high,
                medium: c.regressions.medium,
                low: c.regressions.low,
                total: c.regressions.total(),
                improvements: c.improvements,
                fails: c.fails(),
            }),
            scenarios,
            phases,
            curves,
            regression: r.regression.as_ref().map(regression_view),
            timeline: timeline(r),
            not_run: r
                .scenarios
                .iter()
                .filter(|s| s.schedule.as_ref().is_none_or(|x| x.started_ms.is_none() || x.finished_ms.is_none()))
                .filter(|_| r.suite.is_some())
                .map(|s| NotRun {
                    name: s.root.name.clone(),
                    status: s.status().as_str(),
                    reason: s
                        .schedule
                        .as_ref()
                        .and_then(|x| x.reason.clone())
                        .or_else(|| s.root.error.clone())
                        .unwrap_or_default(),
                })
                .collect(),
            overhead,
            coverage: coverage(r),
        }
    }
}

fn scenario_view(s: &ScenarioResult, phases: &mut Vec<PhaseView>, curves: &mut Vec<CurveSet>) -> ScenarioView {
    let node = node_view(&s.root, &s.root.name, phases);
    curve_sets(&s.root.name, s, curves);
    const LOGS: usize = 40;
    ScenarioView {
        node,
        file: s.file.clone(),
        error: s.error.as_ref().map(|e| ErrorView {
            kind: format!("{:?}", e.kind).to_lowercase(),
            message: e.message.clone(),
            place: place(&e.file, e.line, e.column),
            hint: e.hint.clone(),
            stack: e.stack.iter().map(|f| format!("{} at {}", f.function, place(&f.file, f.line, f.column))).collect(),
        }),
        params: s
            .params
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().map(String::from).unwrap_or_else(|| v.to_string())))
            .collect(),
        logs: s.logs.iter().take(LOGS).map(|l| (l.at_ms, l.message.clone())).collect(),
        logs_more: s.logs.len().saturating_sub(LOGS) + s.logs_dropped as usize,
        worker: s.schedule.as_ref().and_then(|x| x.worker),
        reason: s.schedule.as_ref().and_then(|x| x.reason.clone()),
        depends_on: s.schedule.as_ref().map(|x| x.depends_on.clone()).unwrap_or_default(),
    }
}

fn place(file: &str, line: Option<usize>, col: Option<usize>) -> String {
    match (line, col) {
        (Some(l), Some(c)) => format!("{file}:{l}:{c}"),
        (Some(l), None) => format!("{file}:{l}"),
        _ => file.to_string(),
    }
}

fn node_view(n: &StageResult, path: &str, phases: &mut Vec<PhaseView>) -> NodeView {
    let refs = n
        .phases
        .iter()
        .map(|p| {
            let id = format!("phase-{}", phases.len() + 1);
            phases.push(phase_view(p, &id, path));
            PhaseRef {
                id,
                name: p.name.clone(),
                model: p.model.to_string(),
                throughput: p.throughput,
                p99: if p.model == ModelKind::Connect { p.connect.latency.p99 } else { p.latency.p99 },
                error_rate: p.error_rate,
                limited_by: if crate::load::bottleneck::judged(p) { p.limited_by.verdict.as_str() } else { "" },
            }
        })
        .collect();
    NodeView {
        name: n.name.clone(),
        status: n.status.as_str(),
        open: matches!(n.status, Status::Failed | Status::Timeout | Status::Cancelled),
        duration_ms: n.duration_ms,
        passed: n.assertions.passed,
        failed: n.assertions.failed,
        error: n.error.clone(),
        checks: n
            .checks
            .iter()
            .map(|c| CheckView {
                name: c.name.clone(),
                kind: match c.kind {
                    crate::script::results::CheckKind::Check => "check",
                    crate::script::results::CheckKind::Threshold => "threshold",
                    crate::script::results::CheckKind::Fail => "fail",
                },
                passed: c.passed,
                failed: c.failed,
                failures: c
                    .failures
                    .iter()
                    .take(5)
                    .map(|f| {
                        let at = f.file.as_deref().map(|file| place(file, f.line, None));
                        [f.detail.clone(), at, Some(format!("at {}", human::ms(f.at_ms)))]
                            .into_iter()
                            .flatten()
                            .collect::<Vec<_>>()
                            .join(" \u{b7} ")
                    })
                    .collect(),
            })
            .collect(),
        metrics: n
            .metrics
            .iter()
            .map(|m| MetricView {
                name: m.name.clone(),
                value: m.value,
                unit: m.unit.clone(),
                better: better_str(m.better),
            })
            .collect(),
        phases: refs,
        children: n.stages.iter().map(|c| node_view(c, &format!("{path} / {}", c.name), phases)).collect(),
    }
}

fn ms_axis(label: &str) -> Axis {
    Axis::new(label, AxisKind::Linear, human::count)
}

fn secs_axis() -> Axis {
    Axis::new("time (s)", AxisKind::Linear, human::count)
}

/// A series with markers when it is short enough to point at.
fn series(name: &str, color: &'static str, points: Vec<(f64, f64)>) -> Series {
    let mut s = Series::new(name, color, points);
    s.markers = s.points.len() <= 40;
    s
}

/// The latency of `hist` (V2 base64) by percentile, x = 1 / (1 - q), y in ms.
fn percentile_points(hist: &str) -> Vec<(f64, f64)> {
    let Ok(h) = decode(hist) else { return vec![] };
    if h.is_empty() {
        return vec![];
    }
    let n = h.len() as f64;
    let x_max = n.max(1.0);
    let mut pts: Vec<(f64, f64)> = Vec::with_capacity(128);
    pts.push((1.0, h.min() as f64 / 1000.0));
    for v in h.iter_quantiles(CURVE_TICKS) {
        let q = v.quantile_iterated_to();
        let x = if q >= 1.0 { x_max } else { (1.0 / (1.0 - q)).min(x_max) };
        let y = v.value_iterated_to() as f64 / 1000.0;
        if pts.last().is_some_and(|p| x < p.0) {
            continue;
        }
        pts.push((x, y));
    }
    pts.push((x_max.max(pts.last().map_or(1.0, |p| p.0)), h.max() as f64 / 1000.0));
    pts
}

fn phase_view(p: &PhaseResult, id: &str, path: &str) -> PhaseView {
    let connect = p.model == ModelKind::Connect;
    let mut charts = Vec::new();
    // Latency by percentile: the whole phase, and each request kind when there are several.
    let mut pc = LineChart::new(
        &format!("{}: latency by percentile", p.name),
        Axis::new("percentile", AxisKind::Nines, human::count),
        ms_axis("latency (ms)"),
    );
    let hist = if p.histogram.is_empty() { &p.connect.histogram } else { &p.histogram };
    pc = pc.series(Series::new(if connect { "connect" } else { "all requests" }, PALETTE[0], percentile_points(hist)));
    if p.per_kind.len() > 1 {
        for (i, (kind, k)) in p.per_kind.iter().take(PALETTE.len() - 1).enumerate() {
            pc = pc.series(Series::new(kind, PALETTE[i + 1], percentile_points(&k.histogram)));
        }
    }
    if pc.has_data() {
        charts.push(pc.render());
    }
    let tl = &p.timeline;
    if !connect && tl.len() >= 2 {
        let pts = |f: fn(&crate::load::result::TimelineEntry) -> f64| -> Vec<(f64, f64)> {
            tl.iter().map(|e| (e.t as f64, f(e))).collect()
        };
        charts.push(
            LineChart::new(&format!("{}: throughput per second", p.name), secs_axis(), ms_axis("replies per second"))
                .series(series("throughput", PALETTE[0], pts(|e| e.throughput)))
                .render(),
        );
        charts.push(
            LineChart::new(&format!("{}: latency per second", p.name), secs_axis(), ms_axis("latency (ms)"))
                .series(series("p50", PALETTE[0], pts(|e| e.p50)))
                .series(series("p99", PALETTE[1], pts(|e| e.p99)))
                .series(series("max", PALETTE[4], pts(|e| e.max)))
                .render(),
        );
        if tl.iter().any(|e| e.errors + e.timeouts + e.dropped > 0) {
            charts.push(
                LineChart::new(&format!("{}: errors per second", p.name), secs_axis(), ms_axis("requests"))
                    .series(series("errors", PALETTE[4], pts(|e| e.errors as f64)))
                    .series(series("timeouts", PALETTE[1], pts(|e| e.timeouts as f64)))
                    .series(series("dropped", PALETTE[3], pts(|e| e.dropped as f64)))
                    .render(),
            );
        }
    }
    if let Some(res) = p.resources.as_ref().filter(|r| r.processes.iter().any(|s| s.t.len() >= 2)) {
        let mut mc = LineChart::new(&format!("{}: memory", p.name), secs_axis(), ms_axis("RSS (MiB)"));
        for (i, s) in res.processes.iter().filter(|s| s.t.len() >= 2).take(PALETTE.len()).enumerate() {
            let pts = s.t.iter().zip(&s.rss_bytes).map(|(t, b)| (*t, *b as f64 / 1_048_576.0)).collect();
            mc = mc.series(series(&format!("{} {}", s.role, s.pid), PALETTE[i], pts));
        }
        charts.push(mc.render());
    }
    let errors = p.counts.error_total();
    PhaseView {
        id: id.to_string(),
        path: path.to_string(),
        name: p.name.clone(),
        model: p.model.to_string(),
        status: p.status.to_string(),
        ok: p.status == PhaseStatus::Completed,
        sessions: p.sessions,
        intended_rate: finite(p.intended_rate),
        sent: p.counts.sent,
        errors,
        timeouts: p.counts.timeouts,
        dropped: p.dropped,
        error_rate: p.error_rate,
        throughput: p.throughput,
        duration_s: p.duration_s,
        latency: p.latency.clone(),
        connect_rate: p.connect.rate,
        connect_p99: p.connect.latency.p99,
        connect_failed: p.connect.failed,
        error_kinds: p.counts.errors.iter().map(|(k, v)| (k.clone(), *v)).collect(),
        server_requests: p
            .server_requests
            .iter()
            .map(|(method, c)| ServerRequestView {
                method: method.clone(),
                received: c.received,
                answered: c.answered,
                refused: c.refused,
            })
            .collect(),
        peak_rss: p.resources.as_ref().map(|r| r.mcpscript_peak_rss_bytes as f64).filter(|b| *b > 0.0),
        notes: p.notes.clone(),
        recovery: p
            .recovery
            .iter()
            .map(|r| RecoveryView {
                event: r.event.clone(),
                at_s: r.at_s,
                recovery_s: finite(r.recovery_s),
                affected: r.sessions_affected,
                recovered: r.sessions_recovered,
                lost: r.sessions_lost,
                failed: r.requests_failed,
            })
            .collect(),
        charts,
        limited_by: if crate::load::bottleneck::judged(p) { p.limited_by.verdict.as_str() } else { "" },
        limited_by_evidence: crate::load::bottleneck::evidence(p),
        limited_by_reasons: p.limited_by.reasons.clone(),
    }
}

/// Every phase of the scenario's tree, depth first.
fn all_phases<'a>(n: &'a StageResult, out: &mut Vec<&'a PhaseResult>) {
    out.extend(n.phases.iter());
    n.stages.iter().for_each(|c| all_phases(c, out));
}

/// Whether x spans enough to read better on a log axis.
fn x_axis(label: &str, xs: &[f64]) -> Axis {
    let lo = xs.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = xs.iter().copied().fold(0.0, f64::max);
    let kind = if lo > 0.0 && hi / lo >= 20.0 { AxisKind::Log } else { AxisKind::Linear };
    Axis::new(label, kind, human::count)
}

/// Connection-scaling curves (connect phases) and degradation curves (load phases at
/// several levels) of one scenario.
fn curve_sets(name: &str, s: &ScenarioResult, out: &mut Vec<CurveSet>) {
    let mut ps = Vec::new();
    all_phases(&s.root, &mut ps);
    let mut connects: Vec<&PhaseResult> = ps.iter().copied().filter(|p| p.model == ModelKind::Connect).collect();
    if connects.len() >= 2 {
        connects.sort_by_key(|p| p.connect.attempted);
        let xs: Vec<f64> = connects.iter().map(|p| p.connect.attempted.max(p.sessions) as f64).collect();
        let pts = |f: fn(&PhaseResult) -> f64| xs.iter().zip(&connects).map(|(x, p)| (*x, f(p))).collect();
        let lat = LineChart::new(&format!("{name}: connect latency by sessions"), x_axis("sessions", &xs), {
            ms_axis("connect + initialize (ms)")
        })
        .series(series("p50", PALETTE[0], pts(|p| p.connect.latency.p50)))
        .series(series("p99", PALETTE[1], pts(|p| p.connect.latency.p99)));
        let rate = LineChart::new(&format!("{name}: connect rate by sessions"), x_axis("sessions", &xs), {
            ms_axis("sessions per second")
        })
        .series(series("rate", PALETTE[2], pts(|p| p.connect.rate)));
        out.push(CurveSet {
            scenario: name.to_string(),
            kind: "connection scaling",
            charts: vec![lat.render(), rate.render()],
        });
    }
    for model in [ModelKind::Open, ModelKind::Closed] {
        let open = model == ModelKind::Open;
        let mut load: Vec<(f64, &PhaseResult)> = ps
            .iter()
            .filter(|p| p.model == model)
            .map(|p| (if open { p.intended_rate.unwrap_or(p.send_rate) } else { p.sessions as f64 }, *p))
            .filter(|(x, _)| x.is_finite())
            .collect();
        load.sort_by(|a, b| a.0.total_cmp(&b.0));
        let mut levels: Vec<f64> = load.iter().map(|l| l.0).collect();
        levels.dedup();
        if load.len() < 2 || levels.len() < 2 {
            continue;
        }
        let xs: Vec<f64> = load.iter().map(|l| l.0).collect();
        let label = if open { "offered load (req/s)" } else { "sessions" };
        let pts = |f: fn(&PhaseResult) -> f64| load.iter().map(|(x, p)| (*x, f(p))).collect();
        let tput =
            LineChart::new(&format!("{name}: throughput by load"), x_axis(label, &xs), ms_axis("replies per second"))
                .series(series("throughput", PALETTE[0], pts(|p| p.throughput)));
        let errs =
            LineChart::new(&format!("{name}: error rate by load"), x_axis(label, &xs), ms_axis("error rate (%)"))
                .series(series("error rate", PALETTE[4], pts(|p| p.error_rate * 100.0)));
        out.push(CurveSet {
            scenario: name.to_string(),
            kind: "degradation",
            charts: vec![tput.render(), errs.render()],
        });
    }
}

fn regression_view(c: &Comparison) -> RegressionView {
    let rank = |r: &MetricComparison| match r.verdict {
        Verdict::Regression => 0,
        Verdict::Improvement => 1,
        Verdict::New | Verdict::Missing => 2,
        _ => 3,
    };
    let mut rows: Vec<&MetricComparison> = c.rows.iter().collect();
    rows.sort_by(|a, b| rank(a).cmp(&rank(b)).then(b.severity.cmp(&a.severity)));
    RegressionView {
        baseline: c.baseline.clone(),
        runs: c.baseline_runs.len(),
        fail_on: c.fail_on.map(Severity::as_str),
        rows: rows
            .into_iter()
            .map(|m| {
                let diff = finite(m.diff_pct);
                let color = match m.verdict {
                    Verdict::Regression => svg::RED,
                    Verdict::Improvement => svg::GREEN,
                    _ => svg::GREY,
                };
                RowView {
                    scenario: m.scenario.clone(),
                    metric: m.metric.clone(),
                    unit: m.unit.clone(),
                    better: better_str(m.better),
                    baseline: finite(m.baseline),
                    current: finite(m.current),
                    diff_pct: diff,
                    z: finite(m.z),
                    severity: m.severity.map(Severity::as_str),
                    verdict: m.verdict.as_str(),
                    arrow: match diff {
                        Some(d) if d > 0.0 => "\u{25b2}",
                        Some(d) if d < 0.0 => "\u{25bc}",
                        _ => "",
                    },
                    mann_whitney_p: finite(m.mann_whitney_p),
                    welch_p: finite(m.welch_p),
                    notes: m.notes.join("; "),
                    spark: svg::sparkline(&m.history, color, &format!("{}: last {} runs", m.metric, m.history.len())),
                }
            })
            .collect(),
    }
}

/// The execution timeline: one lane per worker, a bar per scenario.
fn timeline(r: &RunResults) -> Option<String> {
    let mut lanes: Vec<Lane> = Vec::new();
    for s in &r.scenarios {
        let Some(x) = &s.schedule else { continue };
        let (Some(w), Some(a), Some(b)) = (x.worker, x.started_ms, x.finished_ms) else { continue };
        while lanes.len() <= w {
            lanes.push(Lane { label: format!("worker {}", lanes.len()), bars: vec![] });
        }
        lanes[w].bars.push(Bar {
            start: a / 1000.0,
            end: b / 1000.0,
            color: status_color(s.status()),
            label: s.root.name.clone(),
            tooltip: format!(
                "{}: {} ({}), from {} to {}",
                s.root.name,
                human::ms(b - a),
                s.status().as_str(),
                { human::ms(a) },
                human::ms(b)
            ),
        });
    }
    (!lanes.is_empty())
        .then(|| svg::lanes("Execution timeline", &lanes, "time since the suite started (s)", human::count, 1100.0))
}

fn coverage(r: &RunResults) -> Option<CoverageView> {
    let c = &r.coverage;
    if c.methods.is_empty() && c.transports.is_empty() && c.error_classes.is_empty() {
        return None;
    }
    let mut methods: Vec<(String, f64, String)> =
        c.methods.iter().map(|(m, n)| (m.clone(), *n as f64, human::int(*n))).collect();
    methods.sort_by(|a, b| b.1.total_cmp(&a.1));
    Some(CoverageView {
        methods: (!methods.is_empty()).then(|| svg::hbars("Requests by MCP method", &methods, PALETTE[0], 640.0)),
        transports: c.transports.iter().cloned().collect(),
        error_classes: c.error_classes.iter().map(|(k, v)| (k.clone(), *v)).collect(),
    })
}
