//! A sleep accurate to well under a millisecond, for injected delays. Tokio's timer wheel
//! rounds deadlines up to whole milliseconds and the runtime parks with millisecond
//! timeouts, so `sleep(100ms)` ends 100 to 102 ms later: a bias in exactly what a latency
//! fault is meant to control. [`sleep_until`] waits on tokio's timer until shortly before the
//! deadline, then hands the last stretch to one small thread that parks with a precise
//! timeout (a futex wait: tens of microseconds of slack) and wakes whatever is due. Only
//! sleeps in their final milliseconds are ever in that thread's table.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

/// How long before the deadline tokio's timer hands over (more than its worst overshoot).
const HANDOVER: Duration = Duration::from_millis(3);

struct Precise {
    /// Waiting sleeps by (deadline, id).
    waiting: Mutex<BTreeMap<(Instant, u64), Waker>>,
    next_id: AtomicU64,
    thread: std::thread::Thread,
}

impl Precise {
    fn lock(&self) -> MutexGuard<'_, BTreeMap<(Instant, u64), Waker>> {
        // Wakers only; a panic elsewhere cannot leave the map inconsistent.
        self.waiting.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn precise() -> &'static Precise {
    static PRECISE: OnceLock<&'static Precise> = OnceLock::new();
    PRECISE.get_or_init(|| {
        let (tx, rx) = std::sync::mpsc::channel::<&'static Precise>();
        let handle = std::thread::Builder::new()
            .name("mcpscript-precise-timer".into())
            .spawn(move || {
                if let Ok(p) = rx.recv() {
                    run(p)
                }
            })
            .expect("spawning the precise timer thread");
        let p: &'static Precise = Box::leak(Box::new(Precise {
            waiting: Mutex::new(BTreeMap::new()),
            next_id: AtomicU64::new(0),
            thread: handle.thread().clone(),
        }));
        let _ = tx.send(p);
        p
    })
}

fn run(p: &'static Precise) {
    let mut due = Vec::new();
    loop {
        let next = {
            let mut waiting = p.lock();
            let now = Instant::now();
            while let Some(entry) = waiting.first_entry() {
                if entry.key().0 > now {
                    break;
                }
                due.push(entry.remove());
            }
            waiting.keys().next().map(|k| k.0)
        };
        due.drain(..).for_each(Waker::wake);
        match next {
            // An earlier sleep registering meanwhile unparks us (the token is kept if it
            // came before we park).
            Some(t) => std::thread::park_timeout(t.saturating_duration_since(Instant::now())),
            None => std::thread::park(),
        }
    }
}

/// Sleeps until `deadline` with sub-millisecond accuracy.
pub fn sleep_until(deadline: tokio::time::Instant) -> Sleep {
    Sleep { deadline: deadline.into_std(), coarse: None, key: None }
}

/// The future of [`sleep_until`].
pub struct Sleep {
    deadline: Instant,
    coarse: Option<Pin<Box<tokio::time::Sleep>>>,
    key: Option<(Instant, u64)>,
}

impl Sleep {
    fn unregister(&mut self) {
        if let Some(key) = self.key.take() {
            precise().lock().remove(&key);
        }
    }
}

impl Future for Sleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let now = Instant::now();
        if now >= self.deadline {
            self.unregister();
            return Poll::Ready(());
        }
        if self.deadline - now > HANDOVER {
            let handover = tokio::time::Instant::from_std(self.deadline - HANDOVER);
            let coarse = self.coarse.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(handover)));
            if coarse.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
        }
        let p = precise();
        let key = match self.key {
            Some(k) => k,
            None => {
                let k = (self.deadline, p.next_id.fetch_add(1, Ordering::Relaxed));
                self.key = Some(k);
                k
            }
        };
        let first = {
            let mut waiting = p.lock();
            waiting.insert(key, cx.waker().clone());
            waiting.keys().next() == Some(&key)
        };
        if first {
            p.thread.unpark();
        }
        Poll::Pending
    }
}

impl Drop for Sleep {
    fn drop(&mut self) {
        self.unregister();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn wakes_within_a_fraction_of_a_millisecond() {
        let mut late = Vec::new();
        for ms in [1u64, 4, 20] {
            for _ in 0..5 {
                let deadline = tokio::time::Instant::now() + Duration::from_millis(ms);
                sleep_until(deadline).await;
                late.push(tokio::time::Instant::now() - deadline);
            }
        }
        late.sort();
        assert!(late[late.len() / 2] < Duration::from_micros(500), "{late:?}");
    }

    #[tokio::test]
    async fn dropped_sleeps_leave_nothing_behind() {
        // Inside the handover window the first poll registers the sleep with the thread.
        let mut s = Box::pin(sleep_until(tokio::time::Instant::now() + Duration::from_millis(2)));
        assert!(futures_poll_once(s.as_mut()).await.is_pending());
        let key = s.key.expect("registered on first poll");
        assert!(precise().lock().contains_key(&key));
        drop(s);
        // Other tests share the thread's table; only this sleep's entry is ours to check.
        assert!(!precise().lock().contains_key(&key));
    }

    async fn futures_poll_once(mut s: Pin<&mut Sleep>) -> Poll<()> {
        std::future::poll_fn(|cx| Poll::Ready(s.as_mut().poll(cx))).await
    }
}
