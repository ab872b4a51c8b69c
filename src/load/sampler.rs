//! Resource sampling: resident memory (`/proc/PID/statm`; the proportional set size of
//! `/proc/PID/smaps_rollup` for the sums over processes) and CPU time (utime + stime of
//! `/proc/PID/stat`) of a set of processes at an interval, as per-process timelines plus
//! the peaks and means the reports quote, and how busy the whole machine was
//! (`/proc/stat`). Target processes' children are followed too (a `serve --workers` parent
//! and its workers).

use super::result::{ProcessRole, ProcessSeries, Resources};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Processes to watch, with their role; may grow while sampling runs (worker processes
/// start after the sampler). A process added wakes the sampler, which samples it at once:
/// a worker that lives less than one poll is still seen.
#[derive(Clone)]
pub struct Watched(Arc<(Mutex<WatchList>, std::sync::Condvar)>);

struct WatchList {
    procs: Vec<(u32, ProcessRole)>,
    /// Bumped by every change, so a waiting sampler misses none.
    generation: u64,
    /// The sampler is asked to take its last sample and end.
    stopped: bool,
}

impl Watched {
    pub fn new(pid: u32, role: ProcessRole) -> Watched {
        Watched(Arc::new((
            Mutex::new(WatchList { procs: vec![(pid, role)], generation: 0, stopped: false }),
            Default::default(),
        )))
    }

    /// Watches `pid` too (once).
    pub fn add(&self, pid: u32, role: ProcessRole) {
        let mut w = self.list();
        if !w.procs.iter().any(|(p, _)| *p == pid) {
            w.procs.push((pid, role));
            w.generation += 1;
            self.0 .1.notify_all();
        }
    }

    fn list(&self) -> std::sync::MutexGuard<'_, WatchList> {
        self.0 .0.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn snapshot(&self) -> (Vec<(u32, ProcessRole)>, u64) {
        let w = self.list();
        (w.procs.clone(), w.generation)
    }

    /// Waits at most `d` for a change after `generation` or a stop; whether stopped.
    fn wait(&self, generation: u64, d: Duration) -> bool {
        let unchanged = |w: &mut WatchList| w.generation == generation && !w.stopped;
        let (w, _) = self.0 .1.wait_timeout_while(self.list(), d, unchanged).unwrap_or_else(|e| e.into_inner());
        w.stopped
    }

    fn stop(&self) {
        self.list().stopped = true;
        self.0 .1.notify_all();
    }
}

/// How often the list of processes is checked for new ones (sampled at once).
const POLL: Duration = Duration::from_millis(100);

/// The parent of a process and its CPU time in clock ticks (utime + stime), from
/// `/proc/PID/stat`.
pub fn stat_of(pid: u32) -> Option<(u32, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may contain spaces and parentheses: fields start after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // After the name: state(0) ppid(1) ... utime(11) stime(12).
    let ticks: u64 = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    Some((f.get(1)?.parse().ok()?, ticks))
}

/// CPU time of a process in seconds (user + system).
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    stat_of(pid).map(|(_, ticks)| ticks as f64 / clock_ticks())
}

/// The parent of a process.
pub fn parent_of(pid: u32) -> Option<u32> {
    stat_of(pid).map(|(ppid, _)| ppid)
}

/// Direct children of `pid` (scans `/proc`).
pub fn children_of(pid: u32) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else { return vec![] };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|p| parent_of(*p) == Some(pid))
        .collect()
}

/// Busy and total CPU ticks of the whole machine, all cores (the `cpu` line of
/// `/proc/stat`; idle and iowait are not busy).
fn machine_ticks() -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    // user nice system idle iowait irq softirq steal (guest time is within user).
    let f: Vec<u64> = line.split_whitespace().skip(1).take(8).filter_map(|x| x.parse().ok()).collect();
    if f.len() < 4 {
        return None;
    }
    let total: u64 = f.iter().sum();
    let idle = f[3] + f.get(4).copied().unwrap_or(0);
    Some((total - idle, total))
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
/// [`finish`](Sampler::finish) stops it and returns the timelines (dropping it stops it).
pub struct Sampler {
    watched: Watched,
    done: tokio::sync::oneshot::Receiver<Resources>,
}

impl Sampler {
    pub fn start(watched: Watched, interval: Duration) -> Sampler {
        let (done_tx, done) = tokio::sync::oneshot::channel();
        let interval = interval.max(Duration::from_millis(10));
        let handle = watched.clone();
        let _ = std::thread::Builder::new().name("load sampler".into()).spawn(move || {
            let started = Instant::now();
            let mut tracks: Vec<Track> = Vec::new();
            let mut last_t = 0.0;
            let mut n: u64 = 0;
            let mut totals: Vec<Total> = Vec::new();
            let mut machine_before = machine_ticks();
            let mut next = Instant::now();
            let mut last = false;
            let mut polls: u64 = 0;
            loop {
                // Children of target processes (server workers) every 2 s.
                if polls.is_multiple_of(20) {
                    follow_children(&watched);
                }
                polls += 1;
                let (list, generation) = watched.snapshot();
                let fresh = list.iter().any(|(p, _)| !tracks.iter().any(|t| t.series.pid == *p));
                if Instant::now() >= next || fresh || last {
                    next = Instant::now() + interval;
                    let t = started.elapsed().as_secs_f64();
                    let dt = t - last_t;
                    let sum = sample(&list, &mut tracks, t, dt);
                    let machine_now = machine_ticks();
                    let busy = match (machine_before, machine_now) {
                        (Some((b0, t0)), Some((b1, t1))) if t1 > t0 => {
                            (b1.saturating_sub(b0)) as f64 / (t1 - t0) as f64
                        }
                        _ => f64::NAN,
                    };
                    machine_before = machine_now;
                    // The first sample has no CPU interval; keep its memory only.
                    totals.push(Total {
                        rss: sum.rss,
                        pss: sum.pss,
                        cpu: if n > 0 { sum.cpu } else { (f64::NAN, f64::NAN) },
                        machine: if n > 0 { busy } else { f64::NAN },
                        dt: if n > 0 { dt } else { 0.0 },
                    });
                    last_t = t;
                    n += 1;
                }
                if last {
                    break;
                }
                let wait = next.saturating_duration_since(Instant::now()).min(POLL);
                // Woken early by a process added or the stop.
                last = watched.wait(generation, wait);
            }
            let _ = done_tx.send(summarise(tracks, totals, interval));
        });
        Sampler { watched: handle, done }
    }

    pub async fn finish(mut self) -> Resources {
        self.watched.stop();
        (&mut self.done).await.unwrap_or_default()
    }
}

impl Drop for Sampler {
    fn drop(&mut self) {
        self.watched.stop();
    }
}

/// Sums of one sample per side: (mcpscript's processes, the target's).
#[derive(Default)]
struct Sums {
    rss: (u64, u64),
    pss: (u64, u64),
    /// CPU in % of one core.
    cpu: (f64, f64),
}

/// One sample of every watched process; returns the sums per side.
fn sample(list: &[(u32, ProcessRole)], tracks: &mut Vec<Track>, t: f64, dt: f64) -> Sums {
    let mut sum = Sums::default();
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
                    series: ProcessSeries { pid: *pid, role: *role, ..Default::default() },
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
        let pss = crate::util::proc::pss_bytes(*pid).unwrap_or(0);
        if *role == ProcessRole::Target {
            sum.rss.1 += rss;
            sum.pss.1 += pss;
            sum.cpu.1 += pct;
        } else {
            sum.rss.0 += rss;
            sum.pss.0 += pss;
            sum.cpu.0 += pct;
        }
    }
    sum
}

fn follow_children(watched: &Watched) {
    let targets: Vec<u32> =
        watched.snapshot().0.iter().filter(|(_, r)| *r == ProcessRole::Target).map(|(p, _)| *p).collect();
    for t in targets {
        for k in children_of(t) {
            watched.add(k, ProcessRole::Target);
        }
    }
}

/// The sums of one sample over mcpscript's processes and the target's.
struct Total {
    rss: (u64, u64),
    /// PSS sums (mcpscript, target).
    pss: (u64, u64),
    /// CPU in % of one core since the previous sample (NaN for the first).
    cpu: (f64, f64),
    /// Busy share of the whole machine's CPU time since the previous sample (NaN: unknown).
    machine: f64,
    /// Seconds since the previous sample.
    dt: f64,
}

/// The mean CPU over the sampled time (each sample weighted by its interval, so a short
/// last sample counts little) and the highest sample of at least half an interval (a
/// sample of a few ms reads CPU ticks of 10 ms as huge percentages); all samples when
/// none is that long.
fn cpu_of(totals: &[Total], interval: f64, side: fn(&Total) -> f64) -> (f64, f64) {
    let valid: Vec<&Total> = totals.iter().filter(|t| side(t).is_finite() && t.dt > 0.0).collect();
    let time: f64 = valid.iter().map(|t| t.dt).sum();
    let mean = if time > 0.0 { valid.iter().map(|t| side(t) * t.dt).sum::<f64>() / time } else { 0.0 };
    let long = valid.iter().filter(|t| t.dt >= interval / 2.0).map(|t| side(t)).fold(f64::NAN, f64::max);
    let peak = if long.is_finite() { long } else { valid.iter().map(|t| side(t)).fold(0.0, f64::max) };
    (mean, peak)
}

fn summarise(tracks: Vec<Track>, totals: Vec<Total>, interval: Duration) -> Resources {
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
    let i = interval.as_secs_f64();
    let (mcpscript_mean_cpu_pct, mcpscript_peak_cpu_pct) = cpu_of(&totals, i, |t| t.cpu.0);
    let (target_mean_cpu_pct, target_peak_cpu_pct) = cpu_of(&totals, i, |t| t.cpu.1);
    let known = totals.iter().any(|t| t.machine.is_finite() && t.dt > 0.0);
    let machine_busy_fraction = known.then(|| cpu_of(&totals, i, |t| t.machine).0);
    Resources {
        interval_s: i,
        processes,
        mcpscript_peak_rss_bytes: totals.iter().map(|t| t.rss.0).max().unwrap_or(0),
        target_peak_rss_bytes: totals.iter().map(|t| t.rss.1).max().unwrap_or(0),
        mcpscript_peak_pss_bytes: totals.iter().map(|t| t.pss.0).max().unwrap_or(0),
        target_peak_pss_bytes: totals.iter().map(|t| t.pss.1).max().unwrap_or(0),
        mcpscript_mean_cpu_pct,
        target_mean_cpu_pct,
        mcpscript_peak_cpu_pct,
        target_peak_cpu_pct,
        machine_busy_fraction,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_own_cpu_and_parent() {
        let (busy, total) = machine_ticks().unwrap();
        assert!(total > 0 && busy <= total);
        let me = std::process::id();
        assert!(cpu_seconds(me).is_some());
        assert_eq!(parent_of(me), Some(std::os::unix::process::parent_id()));
    }

    #[test]
    fn cpu_means_are_weighted_by_time_and_peaks_ignore_short_samples() {
        let t = |cpu: f64, dt: f64| Total { rss: (0, 0), pss: (0, 0), cpu: (cpu, 0.0), machine: f64::NAN, dt };
        // 1 s at 100%, 1 s at 50%, then a 10 ms tail that read one 10 ms tick as 100%... of 1000%.
        let totals = [t(f64::NAN, 0.0), t(100.0, 1.0), t(50.0, 1.0), t(1000.0, 0.01)];
        let (mean, peak) = cpu_of(&totals, 1.0, |t| t.cpu.0);
        assert!((mean - (150.0 + 10.0) / 2.01).abs() < 1e-9, "{mean}");
        assert_eq!(peak, 100.0);
        // Only short samples: the highest of them.
        let (_, peak) = cpu_of(&[t(30.0, 0.1), t(40.0, 0.1)], 1.0, |t| t.cpu.0);
        assert_eq!(peak, 40.0);
        assert_eq!(cpu_of(&[], 1.0, |t| t.cpu.0), (0.0, 0.0));
    }

    #[tokio::test]
    async fn a_process_added_is_sampled_at_once_even_if_it_ends_before_the_next_poll() {
        let watched = Watched::new(std::process::id(), ProcessRole::Coordinator);
        // A sample every 10 s: between samples the sampler only polls (every 100 ms).
        let s = Sampler::start(watched.clone(), Duration::from_secs(10));
        // After the first sample: the next poll is 100 ms away.
        tokio::time::sleep(Duration::from_millis(10)).await;
        // Lives 50 ms, ending before that poll; a zombie after that (waited for at the end).
        let mut child = std::process::Command::new("sleep").arg("0.05").spawn().unwrap();
        watched.add(child.id(), ProcessRole::Worker);
        tokio::time::sleep(Duration::from_millis(300)).await;
        let r = s.finish().await;
        let _ = child.wait();
        let seen = r.processes.iter().find(|p| p.pid == child.id());
        assert!(seen.is_some_and(|p| !p.rss_bytes.is_empty()), "{:?}", r.processes);
    }

    #[tokio::test]
    async fn samples_this_process() {
        let s = Sampler::start(Watched::new(std::process::id(), ProcessRole::Coordinator), Duration::from_millis(20));
        tokio::time::sleep(Duration::from_millis(100)).await;
        let r = s.finish().await;
        assert_eq!(r.processes.len(), 1);
        assert!(r.processes[0].rss_bytes.len() >= 2, "{:?}", r.processes[0]);
        assert!(r.mcpscript_peak_rss_bytes > 1_000_000);
        // PSS counts the pages shared with other processes (libc's at least) in part only.
        let (rss, pss) = (r.mcpscript_peak_rss_bytes, r.mcpscript_peak_pss_bytes);
        assert!(pss > 1_000_000 && pss < rss, "PSS {pss} vs RSS {rss}");
    }
}
