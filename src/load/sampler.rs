//! Resource sampling: resident memory (`/proc/PID/statm`) and CPU time (utime + stime of
//! `/proc/PID/stat`) of a set of processes at an interval, as per-process timelines plus
//! the peaks and means the reports quote. Target processes' children are followed too
//! (a `serve --workers` parent and its workers).

use super::result::{ProcessSeries, Resources};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Processes to watch, with their role (`coordinator`, `worker`, `target`); may grow while
/// sampling runs (worker processes start after the sampler).
pub type Watched = Arc<Mutex<Vec<(u32, String)>>>;

/// How often the list of processes is checked for new ones (sampled at once).
const POLL: Duration = Duration::from_millis(100);

/// CPU time of a process in seconds (user + system), from `/proc/PID/stat`.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may contain spaces and parentheses: fields start after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // After the name: state(0) ppid(1) ... utime(11) stime(12).
    let ticks: u64 = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    Some(ticks as f64 / clock_ticks())
}

/// The parent of a process.
pub fn parent_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(1)?.parse().ok()
}

/// Direct children of `pid` (scans `/proc`).
pub fn children_of(pid: u32) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else { return vec![] };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|p| parent_of(*p) == Some(pid))
        .collect()
}

fn clock_ticks() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

struct Track {
    series: ProcessSeries,
    last_cpu: Option<f64>,
}

/// A running sampler (on a thread of its own, so a saturated runtime cannot skew it);
/// [`finish`](Sampler::finish) stops it and returns the timelines.
pub struct Sampler {
    stop: std::sync::mpsc::Sender<()>,
    done: tokio::sync::oneshot::Receiver<Resources>,
}

impl Sampler {
    pub fn start(watched: Watched, interval: Duration) -> Sampler {
        let (stop, stop_rx) = std::sync::mpsc::channel::<()>();
        let (done_tx, done) = tokio::sync::oneshot::channel();
        let interval = interval.max(Duration::from_millis(10));
        let _ = std::thread::Builder::new().name("load sampler".into()).spawn(move || {
            let started = Instant::now();
            let mut tracks: Vec<Track> = Vec::new();
            let mut last_t = 0.0;
            let mut n: u64 = 0;
            // (mcpscript rss, target rss, mcpscript cpu, target cpu) per sample.
            let mut totals: Vec<(u64, u64, f64, f64)> = Vec::new();
            let mut next = Instant::now();
            let mut last = false;
            let mut polls: u64 = 0;
            loop {
                // Children of target processes (server workers) every 2 s.
                if polls.is_multiple_of(20) {
                    follow_children(&watched);
                }
                polls += 1;
                let list = watched.lock().unwrap_or_else(|e| e.into_inner()).clone();
                let fresh = list.iter().any(|(p, _)| !tracks.iter().any(|t| t.series.pid == *p));
                if Instant::now() >= next || fresh || last {
                    next = Instant::now() + interval;
                    let t = started.elapsed().as_secs_f64();
                    let sum = sample(&list, &mut tracks, t, t - last_t);
                    // The first sample has no CPU interval; keep its memory only.
                    totals.push(if n > 0 { sum } else { (sum.0, sum.1, f64::NAN, f64::NAN) });
                    last_t = t;
                    n += 1;
                }
                if last {
                    break;
                }
                let wait = next.saturating_duration_since(Instant::now()).min(POLL);
                if !matches!(stop_rx.recv_timeout(wait), Err(std::sync::mpsc::RecvTimeoutError::Timeout)) {
                    last = true;
                }
            }
            let _ = done_tx.send(summarise(tracks, totals, interval));
        });
        Sampler { stop, done }
    }

    pub async fn finish(self) -> Resources {
        let _ = self.stop.send(());
        self.done.await.unwrap_or_default()
    }
}

/// One sample of every watched process; returns the sums per side.
fn sample(list: &[(u32, String)], tracks: &mut Vec<Track>, t: f64, dt: f64) -> (u64, u64, f64, f64) {
    let mut sum = (0u64, 0u64, 0.0f64, 0.0f64);
    for (pid, role) in list {
        let (Some(rss), Some(cpu)) = (crate::util::proc::rss_bytes(*pid), cpu_seconds(*pid)) else { continue };
        // A zombie (exited, not yet reaped) has no memory left to report.
        if rss == 0 {
            continue;
        }
        let tr = match tracks.iter_mut().position(|x| x.series.pid == *pid) {
            Some(i) => &mut tracks[i],
            None => {
                tracks.push(Track {
                    series: ProcessSeries { pid: *pid, role: role.clone(), ..Default::default() },
                    last_cpu: None,
                });
                tracks.last_mut().expect("just pushed")
            }
        };
        let pct = match tr.last_cpu {
            Some(prev) if dt > 0.0 => ((cpu - prev) / dt * 100.0).max(0.0),
            _ => 0.0,
        };
        tr.last_cpu = Some(cpu);
        tr.series.t.push((t * 1000.0).round() / 1000.0);
        tr.series.rss_bytes.push(rss);
        tr.series.cpu_pct.push((pct * 10.0).round() / 10.0);
        if role == "target" {
            sum.1 += rss;
            sum.3 += pct;
        } else {
            sum.0 += rss;
            sum.2 += pct;
        }
    }
    sum
}

fn follow_children(watched: &Watched) {
    let targets: Vec<u32> = watched
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .filter(|(_, r)| r == "target")
        .map(|(p, _)| *p)
        .collect();
    if targets.is_empty() {
        return;
    }
    let mut kids = Vec::new();
    for t in targets {
        kids.extend(children_of(t));
    }
    let mut w = watched.lock().unwrap_or_else(|e| e.into_inner());
    for k in kids {
        if !w.iter().any(|(p, _)| *p == k) {
            w.push((k, "target".into()));
        }
    }
}

fn summarise(tracks: Vec<Track>, totals: Vec<(u64, u64, f64, f64)>, interval: Duration) -> Resources {
    let mean = |xs: Vec<f64>| if xs.is_empty() { 0.0 } else { xs.iter().sum::<f64>() / xs.len() as f64 };
    let processes = tracks
        .into_iter()
        .map(|t| {
            let mut s = t.series;
            s.peak_rss_bytes = s.rss_bytes.iter().copied().max().unwrap_or(0);
            s.mean_cpu_pct = mean(s.cpu_pct.iter().skip(1).copied().collect());
            s
        })
        .collect();
    Resources {
        interval_s: interval.as_secs_f64(),
        processes,
        mcpscript_peak_rss_bytes: totals.iter().map(|t| t.0).max().unwrap_or(0),
        target_peak_rss_bytes: totals.iter().map(|t| t.1).max().unwrap_or(0),
        mcpscript_mean_cpu_pct: mean(totals.iter().map(|t| t.2).filter(|x| x.is_finite()).collect()),
        target_mean_cpu_pct: mean(totals.iter().map(|t| t.3).filter(|x| x.is_finite()).collect()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_own_cpu_and_parent() {
        let me = std::process::id();
        assert!(cpu_seconds(me).is_some());
        assert_eq!(parent_of(me), Some(std::os::unix::process::parent_id()));
    }

    #[tokio::test]
    async fn samples_this_process() {
        let watched: Watched = Arc::new(Mutex::new(vec![(std::process::id(), "coordinator".into())]));
        let s = Sampler::start(watched, Duration::from_millis(20));
        tokio::time::sleep(Duration::from_millis(100)).await;
        let r = s.finish().await;
        assert_eq!(r.processes.len(), 1);
        assert!(r.processes[0].rss_bytes.len() >= 2, "{:?}", r.processes[0]);
        assert!(r.mcpscript_peak_rss_bytes > 1_000_000);
    }
}
