//! The `mcpscript` binary: everything lives in the library; this only installs the counting
//! allocator and hands over the exit code.

/// Counts what each thread allocates, so that a script's memory limit is checked when the
/// script allocates, not only every few thousand operations.
#[global_allocator]
static ALLOCATOR: mcpscript::util::alloc::Counting = mcpscript::util::alloc::Counting;

fn main() {
    std::process::exit(mcpscript::cli::main());
}
