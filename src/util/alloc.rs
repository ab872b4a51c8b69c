//! The binary's global allocator: the system allocator, counting per thread the bytes each
//! thread allocates (never decremented: a running total, one thread-local add per
//! allocation). A script's progress callback reads its own thread's total to notice that
//! the script just allocated a lot, and only then pays for reading the process's resident
//! memory against `--max-memory`. Test binaries that link only the library keep the plain
//! system allocator; their totals read 0.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

thread_local! {
    static ALLOCATED: Cell<u64> = const { Cell::new(0) };
}

/// The system allocator with a per-thread count of bytes allocated.
pub struct Counting;

fn note(bytes: usize) {
    // `try_with`: a thread being torn down allocates too; it is simply not counted.
    let _ = ALLOCATED.try_with(|c| c.set(c.get().wrapping_add(bytes as u64)));
}

// SAFETY: every call is forwarded unchanged to `System`, which upholds GlobalAlloc's
// contract; the counting touches only a const-initialized thread-local `Cell` (no
// allocation, no destructor).
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size.saturating_sub(layout.size()));
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

/// Bytes the calling thread has allocated so far (0 without the counting allocator).
pub fn allocated_by_this_thread() -> u64 {
    ALLOCATED.try_with(Cell::get).unwrap_or(0)
}
