//! Small helpers shared by every layer: human durations (`"250ms"`, `"5s"`) and sizes
//! (`"64KB"`, `"1MiB"`), numbers as people read them (`60.3K req/s`, `20.5 ms`), and
//! processes: resource readings (RSS, open-file limit) and the one way mcpscript starts a
//! command (its own process group, signalled whole, gone with mcpscript even when
//! mcpscript is SIGKILLed); and the one "did you mean" rule (`suggest`) for unknown names.

pub mod alloc;
pub mod duration;
pub mod human;
pub mod proc;
pub mod size;
pub mod suggest;

pub use suggest::suggest;

/// Locks `m`, taking the data as it is when a panic poisoned the lock: every mutex of
/// mcpscript guards data that a panic cannot leave worse than half-updated.
pub fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
