//! The fuzz targets (`fuzz/harness`) for 20,000 executions each, with a fixed seed: the
//! committed seed corpus first (crashes found before stay fixed), then mutants. Any panic,
//! any input slower than the timeout, or a hang fails the test; failing inputs are saved to
//! `fuzz/artifacts/TARGET/`. The long runs are `cargo run --release --example fuzz` (see
//! fuzz/README.md).

#[allow(dead_code)]
#[path = "../fuzz/harness/mod.rs"]
mod harness;

use harness::{Kind, Options, Target};
use std::time::Duration;

const EXECUTIONS: u64 = 20_000;
const SEED: u64 = 0x5eed;

fn smoke(name: &str) {
    let target = harness::target(name).expect("a fuzz target");
    let dir = harness::root().join("fuzz/corpus").join(name);
    let seeds: Vec<Vec<u8>> =
        harness::load_corpus(&dir).expect("the seed corpus").into_iter().map(|(_, b)| b).collect();
    assert!(!seeds.is_empty(), "no seeds in {}", dir.display());
    let mut opts = Options::new(EXECUTIONS, SEED);
    // Debug builds are some ten times slower than release, whose runs allow one second an
    // input; inputs are kept smaller than there (8 KB) so the whole test stays under 20 s.
    opts.timeout = Duration::from_secs(2);
    opts.max_len = Some(target.max_len.min(8 * 1024));
    opts.artifacts = Some(harness::root().join("fuzz/artifacts").join(name));
    let report = harness::run(target, seeds, &opts);
    eprint!("{}", report.summary());
    assert_eq!(report.executions, EXECUTIONS, "{}", report.summary());
    assert!(!report.failed(), "{}", report.summary());
}

#[test]
fn manifest() {
    smoke("manifest");
}

#[test]
fn jsonrpc() {
    smoke("jsonrpc");
}

#[test]
fn lines() {
    smoke("lines");
}

#[test]
fn sse() {
    smoke("sse");
}

#[test]
fn threshold() {
    smoke("threshold");
}

#[test]
fn fault() {
    smoke("fault");
}

/// The harness itself: a panic is caught, placed and minimised, a slow input flagged, a hang
/// stops the run (a checker that cannot fail keeps nobody honest).
#[test]
fn the_harness_catches_panics_slow_inputs_and_hangs() {
    fn run(input: &[u8]) -> u64 {
        if input.windows(4).any(|w| w == b"boom") {
            panic!("boom");
        }
        if input.windows(4).any(|w| w == b"hang") {
            loop {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        if input == b"slow" {
            std::thread::sleep(Duration::from_millis(60));
        }
        input.len() as u64
    }
    static T: Target = Target { name: "selftest", about: "", run, dict: &["boom", "slow"], nests: &[], max_len: 64 };
    let mut opts = Options::new(1000, 1);
    opts.timeout = Duration::from_millis(40);
    let r = harness::run(&T, vec![b"slow".to_vec(), b"xx-bo-om-xx".to_vec()], &opts);
    assert_eq!(r.executions, 1000, "{}", r.summary());
    let crash = r.findings.iter().find(|f| f.kind == Kind::Crash).expect("the panic is found");
    assert!(crash.place.contains("fuzz_smoke.rs") && crash.message == "boom", "{}", r.summary());
    assert_eq!(crash.minimized.as_deref(), Some(&b"boom"[..]));
    assert!(r.count(Kind::Slow) >= 1, "{}", r.summary());
    // A hang: the run stops at it (the stuck thread sleeps on, left behind).
    let r = harness::run(&T, vec![b"hang".to_vec()], &opts);
    assert_eq!(r.count(Kind::Hang), 1, "{}", r.summary());
    assert_eq!(r.findings[0].input, b"hang");
}
