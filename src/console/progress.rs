//! What a person watches while a run goes on. [`Progress`] is the run's console: every log
//! line of a scenario goes through it, stamped with the time since the run started (so the
//! clock never goes back when scenarios run in parallel) and, in a suite, the scenario's
//! name: `[   3.012s] latency | load baseline (closed): ...`. While scenarios run it shows
//! them:
//!
//! - stderr is a terminal: one bar per running scenario (indicatif), elapsed of its timeout,
//!   what it does (stage or load phase) and the phase's live figures: requests sent,
//!   errors, the last second's rate. Lines printed meanwhile go through the bars' suspend,
//!   so bars are never torn.
//! - stderr is not a terminal: one status line every [`INTERVAL_ENV`] (default 5 s):
//!   `[  12.300s] running: latency (3.01 s of 1 min, load baseline: 218K sent, 0 errors,
//!   72.7K req/s); chaos (...)`.
//! - `--quiet`: nothing.
//!
//! `NO_COLOR` (set and not empty) turns colour off. The live figures are the load phases'
//! folded seconds ([`crate::load::live`]): nothing is counted for the display.

use crate::load::live::LiveFigures;
use crate::script::ctx::{Console, Live};
use crate::script::results::Status;
use crate::util::human;
use crate::util::lock;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::{IsTerminal, Write};
use std::sync::{mpsc, Arc, Mutex, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How often the status line is printed when stderr is not a terminal (`5s`, `1s`, ...;
/// `0` or `off`: never).
pub const INTERVAL_ENV: &str = "MCPSCRIPT_PROGRESS_INTERVAL";
const DEFAULT_INTERVAL: Duration = Duration::from_secs(5);
/// How often the bars are redrawn.
const BAR_REFRESH: Duration = Duration::from_millis(200);

/// How a console shows running scenarios.
enum Mode {
    /// stderr is a terminal: bars.
    Bars(MultiProgress),
    /// A status line this often.
    Lines(Duration),
    /// Log lines only.
    Plain,
}

/// What a console is asked to do.
#[derive(Debug, Clone)]
pub struct Options {
    /// When the run started: every printed time counts from here.
    pub started: Instant,
    /// Show running scenarios (bars or status lines); off with `--quiet`.
    pub show: bool,
    /// Width of the name column of log lines (the longest scenario name).
    pub width: usize,
}

struct Entry {
    live: Arc<Live>,
    bar: Option<ProgressBar>,
}

struct State {
    running: Vec<Entry>,
    finished: bool,
}

/// A run's console (see the module documentation).
pub struct Progress {
    started: Instant,
    mode: Mode,
    width: usize,
    color: bool,
    /// Held while printing (times are taken under it, so they never go back) and while
    /// the bars are updated.
    state: Mutex<State>,
    ticker: Mutex<Option<(mpsc::Sender<()>, JoinHandle<()>)>>,
}

impl Progress {
    /// A console for a run; bars or status lines when `o.show`, as the terminal allows.
    pub fn start(o: Options) -> Arc<Progress> {
        let mode = match (o.show, std::io::stderr().is_terminal(), interval()) {
            (false, _, _) => Mode::Plain,
            (true, true, _) => Mode::Bars(MultiProgress::with_draw_target(ProgressDrawTarget::stderr())),
            (true, false, Some(every)) => Mode::Lines(every),
            (true, false, None) => Mode::Plain,
        };
        let p = Arc::new(Progress {
            started: o.started,
            mode,
            width: o.width,
            color: color_allowed(),
            state: Mutex::new(State { running: Vec::new(), finished: false }),
            ticker: Mutex::new(None),
        });
        let every = match p.mode {
            Mode::Bars(_) => Some(BAR_REFRESH),
            Mode::Lines(d) => Some(d),
            Mode::Plain => None,
        };
        if let Some(every) = every {
            let (tx, rx) = mpsc::channel::<()>();
            let weak: Weak<Progress> = Arc::downgrade(&p);
            let spawned = std::thread::Builder::new().name("progress".into()).spawn(move || loop {
                match rx.recv_timeout(every) {
                    Err(mpsc::RecvTimeoutError::Timeout) => {}
                    _ => return,
                }
                match weak.upgrade() {
                    Some(p) => p.tick(),
                    None => return,
                }
            });
            if let Ok(t) = spawned {
                *lock(&p.ticker) = Some((tx, t));
            }
        }
        p
    }

    /// Registers a running scenario (its bar appears) and returns its entry, whose log
    /// lines carry its name when `named`.
    pub fn scenario(self: &Arc<Self>, name: &str, timeout: Option<Duration>, named: bool) -> Arc<Live> {
        let live = Live::new(name, timeout, named, self.clone() as Arc<dyn Console>);
        let mut st = lock(&self.state);
        if st.finished {
            return live;
        }
        let bar = match &self.mode {
            Mode::Bars(m) => {
                let len = timeout.map_or(0, |t| t.as_millis() as u64);
                let bar = if len > 0 { ProgressBar::new(len) } else { ProgressBar::new_spinner() };
                bar.set_style(bar_style(self.width.max(name.len()), len > 0, self.color));
                bar.set_prefix(name.to_string());
                bar.set_message(activity(&live, " / "));
                Some(m.add(bar))
            }
            _ => None,
        };
        st.running.push(Entry { live: live.clone(), bar });
        live
    }

    /// A scenario ended: its bar goes away.
    pub fn done(&self, live: &Arc<Live>) {
        let mut st = lock(&self.state);
        if let Some(i) = st.running.iter().position(|e| Arc::ptr_eq(&e.live, live)) {
            let e = st.running.remove(i);
            if let (Some(bar), Mode::Bars(m)) = (e.bar, &self.mode) {
                bar.finish_and_clear();
                m.remove(&bar);
            }
        }
    }

    /// Prints `text` on stdout (above the bars), each line stamped with the run's time.
    pub fn say(&self, text: &str) {
        let _st = lock(&self.state);
        let stamp = self.stamp();
        let text: String = text.lines().map(|l| format!("{stamp} {l}\n")).collect();
        self.suspended(|| {
            let mut out = std::io::stdout().lock();
            // A closed stdout (`| head`) is not worth failing the run over.
            let _ = out.write_all(text.as_bytes()).and_then(|_| out.flush());
        });
    }

    /// A scenario status, padded, in its colour when stdout is a terminal and colour is
    /// allowed.
    pub fn status_word(&self, s: Status) -> String {
        let word = format!("{:<8}", s.as_str());
        let code = match s {
            Status::Passed => "32",
            Status::Failed | Status::Timeout => "31",
            _ => "33",
        };
        if self.color && std::io::stdout().is_terminal() {
            format!("\x1b[{code}m{word}\x1b[0m")
        } else {
            word
        }
    }

    /// Stops the display and clears the bars; later lines print plainly. Idempotent.
    pub fn finish(&self) {
        if let Some((tx, t)) = lock(&self.ticker).take() {
            drop(tx);
            if t.thread().id() != std::thread::current().id() {
                let _ = t.join();
            }
        }
        let mut st = lock(&self.state);
        st.finished = true;
        for e in st.running.drain(..) {
            if let Some(bar) = e.bar {
                bar.finish_and_clear();
            }
        }
        if let Mode::Bars(m) = &self.mode {
            let _ = m.clear();
        }
    }

    /// `[   3.012s]`: the time since the run started.
    fn stamp(&self) -> String {
        format!("[{:>8.3}s]", self.started.elapsed().as_secs_f64())
    }

    /// Runs `f` (which prints) with the bars out of the way.
    fn suspended(&self, f: impl FnOnce()) {
        match &self.mode {
            Mode::Bars(m) => m.suspend(f),
            _ => f(),
        }
    }

    /// A redraw: the bars' figures, or the status line.
    fn tick(&self) {
        let st = lock(&self.state);
        if st.finished || st.running.is_empty() {
            return;
        }
        match &self.mode {
            Mode::Bars(_) => {
                for e in &st.running {
                    if let Some(bar) = &e.bar {
                        let ms = e.live.elapsed().as_millis() as u64;
                        bar.set_position(bar.length().map_or(ms, |len| ms.min(len)));
                        bar.set_message(activity(&e.live, " / "));
                    }
                }
            }
            Mode::Lines(_) => {
                let line = format!("{} running: {}\n", self.stamp(), status_line(&st.running));
                let _ = std::io::stderr().lock().write_all(line.as_bytes());
            }
            Mode::Plain => {}
        }
    }
}

impl Console for Progress {
    fn log(&self, name: Option<&str>, message: &str) {
        let _st = lock(&self.state);
        let line = match name {
            Some(n) => format!("{} {n:<w$} | {message}\n", self.stamp(), w = self.width),
            None => format!("{} {message}\n", self.stamp()),
        };
        self.suspended(|| {
            // A closed stderr must not end the script.
            let _ = std::io::stderr().lock().write_all(line.as_bytes());
        });
    }

    fn finish(&self) {
        Progress::finish(self);
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.finish();
    }
}

/// The console of a script run on its own: its lines carry no name; bars or status lines as
/// the terminal allows. The script context finishes it when the script ends.
pub fn standalone(name: &str) -> Arc<Live> {
    let p = Progress::start(Options { started: Instant::now(), show: true, width: 0 });
    p.scenario(name, None, false)
}

/// The running scenarios for the status line: `latency (3.01 s of 1 min, load baseline:
/// 218K sent, 0 errors, 72.7K req/s); chaos (1.2 s of 1 min, stage kill)`.
fn status_line(running: &[Entry]) -> String {
    running.iter().map(|e| format!("{} ({})", e.live.name, activity(&e.live, " of "))).collect::<Vec<_>>().join("; ")
}

/// How long a scenario has run (of its timeout) and what it does: `3.01 s of 1 min, load
/// baseline: 218K sent, 0 errors, 72.7K req/s`.
fn activity(live: &Live, of: &str) -> String {
    let elapsed = human::ms(live.elapsed().as_secs_f64() * 1000.0);
    let mut s = match live.timeout {
        Some(t) => format!("{elapsed}{of}{}", human::ms(t.as_secs_f64() * 1000.0)),
        None => elapsed,
    };
    if let Some(stage) = live.stage() {
        s.push_str(&format!(", stage {stage}"));
    }
    if let Some(p) = live.phase() {
        s.push_str(&format!(", load {}: {}", p.name, figures(p.model, p.sessions, &p.figures())));
    }
    s
}

/// A running phase's figures as a person reads them.
fn figures(model: &str, sessions: u64, f: &LiveFigures) -> String {
    if !f.loading {
        return format!(
            "opening sessions, {} of {} open",
            human::int(f.open_sessions.max(0) as u64),
            human::int(sessions)
        );
    }
    let errors =
        if f.errors == 0 { "0 errors".to_string() } else { format!("{} errors", human::count(f.errors as f64)) };
    let timeouts =
        if f.timeouts == 0 { String::new() } else { format!(", {} timeouts", human::count(f.timeouts as f64)) };
    if model == "connect" && f.sent == 0 {
        format!("connecting {} sessions", human::int(sessions))
    } else if model == "connect" {
        format!(
            "{} sessions open, {errors}{timeouts}, {} connects/s",
            human::count(f.open_sessions.max(0) as f64),
            human::count(f.rate)
        )
    } else {
        format!("{} sent, {errors}{timeouts}, {} req/s", human::count(f.sent as f64), human::count(f.rate))
    }
}

fn bar_style(width: usize, bounded: bool, color: bool) -> ProgressStyle {
    ProgressStyle::with_template(&bar_template(width, bounded, color))
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ")
}

/// `name [=====>    ] 3.01 s / 1 min, load baseline: ...`, coloured unless told not to.
fn bar_template(width: usize, bounded: bool, color: bool) -> String {
    let bar = match (bounded, color) {
        (true, true) => "[{bar:24.cyan/blue}]",
        (true, false) => "[{bar:24}]",
        (false, true) => "{spinner:.cyan}",
        (false, false) => "{spinner}",
    };
    let name = if color { format!("{{prefix:<{width}.bold}}") } else { format!("{{prefix:<{width}}}") };
    format!("{name} {bar} {{msg}}")
}

/// `NO_COLOR` set to anything but the empty string turns colour off (no-color.org).
fn color_allowed() -> bool {
    std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// The status line interval from [`INTERVAL_ENV`]; `None`: no status lines.
fn interval() -> Option<Duration> {
    parse_interval(std::env::var(INTERVAL_ENV).ok().as_deref())
}

fn parse_interval(v: Option<&str>) -> Option<Duration> {
    match v.map(str::trim) {
        None | Some("") => Some(DEFAULT_INTERVAL),
        Some("0" | "off" | "none") => None,
        Some(s) => Some(crate::util::duration::parse_duration(s).unwrap_or(DEFAULT_INTERVAL)).filter(|d| !d.is_zero()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn running_phases_read_in_three_significant_figures() {
        let f = LiveFigures {
            sent: 218_171,
            ok: 218_171,
            errors: 0,
            timeouts: 0,
            rate: 72718.41440950964,
            open_sessions: 10,
            loading: true,
        };
        assert_eq!(figures("closed", 10, &f), "218K sent, 0 errors, 72.7K req/s");
        let f = LiveFigures { errors: 283_705, timeouts: 3, ..f };
        assert_eq!(figures("closed", 10, &f), "218K sent, 284K errors, 3 timeouts, 72.7K req/s");
        let f = LiveFigures { loading: false, open_sessions: 120, ..f };
        assert_eq!(figures("closed", 1000, &f), "opening sessions, 120 of 1,000 open");
        let f = LiveFigures { loading: true, errors: 0, timeouts: 0, rate: 1345.2, open_sessions: 150, ..f };
        assert_eq!(figures("connect", 200, &f), "150 sessions open, 0 errors, 1.35K connects/s");
        let f = LiveFigures { sent: 0, rate: 0.0, open_sessions: 0, ..f };
        assert_eq!(figures("connect", 200, &f), "connecting 200 sessions");
    }

    #[test]
    fn the_status_line_names_each_scenario_with_its_time_and_phase() {
        let p = Progress::start(Options { started: Instant::now(), show: false, width: 7 });
        let a = p.scenario("latency", Some(Duration::from_secs(60)), true);
        let b = p.scenario("chaos", None, true);
        b.set_stage(Some("kill".into()));
        let line = status_line(&lock(&p.state).running);
        let re_a = line.starts_with("latency (") && line.contains(" of 1 min)");
        assert!(re_a && line.contains("; chaos (") && line.ends_with(", stage kill)"), "{line}");
        p.done(&a);
        assert_eq!(lock(&p.state).running.len(), 1);
        p.finish();
        assert!(lock(&p.state).running.is_empty());
    }

    #[test]
    fn the_interval_comes_from_the_environment_variable() {
        assert_eq!(parse_interval(None), Some(DEFAULT_INTERVAL));
        assert_eq!(parse_interval(Some("1s")), Some(Duration::from_secs(1)));
        assert_eq!(parse_interval(Some("250ms")), Some(Duration::from_millis(250)));
        assert_eq!(parse_interval(Some("off")), None);
        assert_eq!(parse_interval(Some("0")), None);
        assert_eq!(parse_interval(Some("soon")), Some(DEFAULT_INTERVAL));
    }

    #[test]
    fn no_color_drops_the_colour_of_bars() {
        for bounded in [true, false] {
            let plain = bar_template(7, bounded, false);
            assert!(!plain.contains('.'), "no style in {plain}");
            assert!(ProgressStyle::with_template(&plain).is_ok(), "{plain}");
            let colored = bar_template(7, bounded, true);
            assert!(colored.contains(".cyan") && colored.contains(".bold"), "{colored}");
            assert!(ProgressStyle::with_template(&colored).is_ok(), "{colored}");
        }
    }
}
