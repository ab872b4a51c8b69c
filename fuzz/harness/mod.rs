//! A structured random fuzzer for the parsers that read untrusted input, shared by the
//! runner (`examples/fuzz.rs`) and the CI smoke test (`tests/fuzz_smoke.rs`); see
//! `fuzz/README.md`.
//!
//! Coverage-guided fuzzing (cargo-fuzz, libFuzzer) needs a nightly compiler CI does not
//! have, so this harness is seeded and deterministic instead: it replays a committed seed
//! corpus (`fuzz/corpus/TARGET/`), then mutates it with byte flips, insertions, deletions,
//! truncations, splices, dictionary tokens, word and number replacements, line shuffles and
//! deep nesting. An input whose outcome (which branch, which error, with names and numbers
//! left out) was not seen before joins the working corpus: a crude stand-in for coverage
//! feedback that lets mutations build on inputs that got past a check.
//!
//! Every execution is caught (`catch_unwind`; the panic's place is recorded) and timed: an
//! input slower than the timeout is a failure (`slow`), and one still running at ten times
//! the timeout is a hang, found by a watchdog while the fuzzing thread is stuck in it.
//! Crashes are minimised (chunks removed while it still panics at the same place) and every
//! failing input is saved to `fuzz/artifacts/TARGET/`.

pub mod targets;

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, Once};
use std::time::{Duration, Instant};

/// A fuzz target: one parser entry point fed one input. It returns a hash of the outcome's
/// shape (see [`shape`]); a new shape adds the input to the working corpus.
pub struct Target {
    pub name: &'static str,
    /// What the target covers, for `--list` and the README.
    pub about: &'static str,
    pub run: fn(&[u8]) -> u64,
    /// Tokens of the input language, inserted or swapped in by mutations.
    pub dict: &'static [&'static str],
    /// Openers and closers the deep-nesting mutation repeats.
    pub nests: &'static [(&'static str, &'static str)],
    /// Mutants are cut to this length (unless the options say otherwise).
    pub max_len: usize,
}

/// The target named `name`.
pub fn target(name: &str) -> Option<&'static Target> {
    targets::ALL.iter().find(|t| t.name == name)
}

/// The repository root (where `fuzz/` is).
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The committed seed corpus of a target, sorted by file name.
pub fn load_corpus(dir: &Path) -> std::io::Result<Vec<(String, Vec<u8>)>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_type()?.is_file() {
            out.push((entry.file_name().to_string_lossy().into_owned(), std::fs::read(entry.path())?));
        }
    }
    out.sort();
    Ok(out)
}

// ---------------------------------------------------------------------------------------
// Randomness and hashing: self-contained, so a seed means the same inputs on every version.

/// SplitMix64.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x5DEE_CE66_D1CE_4E5B)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next_u64() % n as u64) as usize
        }
    }

    pub fn one_in(&mut self, n: usize) -> bool {
        self.below(n) == 0
    }

    pub fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[self.below(xs.len())]
    }
}

/// FNV-1a.
pub fn hash(bytes: &[u8]) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    for b in bytes {
        h = (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// The shape of an outcome's text: the hash of its words, leaving out quoted parts (`'..'`,
/// `".."`, `` `..` ``), digits, punctuation, long runs of letters and any word that occurs in
/// `input` (parsers echo input unquoted: "p(abc) needs a number"), so "unknown field `x`"
/// and "unknown field `y`" are one outcome.
pub fn shape(text: &str, input: &[u8]) -> u64 {
    let mut kept = Vec::with_capacity(200);
    let mut word = Vec::new();
    let mut quote: Option<char> = None;
    let end_word = |word: &mut Vec<u8>, kept: &mut Vec<u8>| {
        if !word.is_empty() && word.len() <= 12 && memchr::memmem::find(input, word).is_none() {
            kept.extend_from_slice(word);
            kept.push(b' ');
        }
        word.clear();
    };
    for c in text.chars().take(2000) {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if matches!(c, '\'' | '"' | '`') => {
                end_word(&mut word, &mut kept);
                quote = Some(c);
            }
            None if c.is_ascii_alphabetic() || c == '_' => word.push(c as u8),
            None => end_word(&mut word, &mut kept),
        }
        if kept.len() >= 200 {
            break;
        }
    }
    end_word(&mut word, &mut kept);
    hash(&kept)
}

/// An input as a short, printable preview.
pub fn preview(input: &[u8], max: usize) -> String {
    let mut s = String::new();
    for &b in input.iter().take(max) {
        match b {
            b'\n' => s.push_str("\\n"),
            b'\r' => s.push_str("\\r"),
            b'\t' => s.push_str("\\t"),
            b'\\' => s.push_str("\\\\"),
            0x20..=0x7e => s.push(b as char),
            _ => {
                let _ = write!(s, "\\x{b:02x}");
            }
        }
    }
    if input.len() > max {
        let _ = write!(s, "... ({} bytes)", input.len());
    }
    s
}

// ---------------------------------------------------------------------------------------
// Mutations.

const BYTES: &[u8] = b"\0\x01\x1b\x7f\xff\xc3\xb5\n\r\t \"'\\:,=[]{}()<>!#-_.%/&*|?@`~+0159aepz";

const TEXT: &[&str] = &[
    "",
    "0",
    "1",
    "-1",
    "-0",
    "0.5",
    "1.5",
    "1e308",
    "1e309",
    "1e-400",
    "-1e308",
    "NaN",
    "inf",
    "-inf",
    "255",
    "65536",
    "4294967296",
    "9223372036854775807",
    "9223372036854775808",
    "-9223372036854775808",
    "-9223372036854775809",
    "18446744073709551615",
    "18446744073709551616",
    "340282366920938463463374607431768211456",
    "0.000000000000000000001",
    "1_000",
    "1__0",
    "00000000000000000000000000000000001",
    "99999999999999999999999999999999999999999999999999",
    "\u{feff}",
    "\u{b5}",
    "\u{e9}",
    "\u{1f600}",
    "\u{2028}",
    "\u{0}",
    "null",
    "true",
    "false",
    "~",
    "\"\"",
    "''",
    "``",
    "\\",
    "\\u0000",
    "\\ud800",
    "\\udc00\\ud800",
    "\r\n",
    "\r",
    "\n\n",
    "\r\r\n",
    " ",
    "\t",
];

const WHITESPACE: &[&[u8]] = &[b" ", b"  ", b"\t", b"\n", b"\r\n", b"\n  ", b"\n- "];

const DEPTHS: &[usize] = &[2, 3, 8, 32, 63, 64, 65, 100, 127, 128, 129, 200, 255, 256, 257, 1000, 5000, 20000];

/// Mutates seed inputs: each call applies one to a dozen mutations to one input.
pub struct Mutator<'a> {
    pub dict: &'a [&'a str],
    pub nests: &'a [(&'a str, &'a str)],
    /// Inputs are cut to this length.
    pub max_len: usize,
}

fn is_word(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'.'
}

impl Mutator<'_> {
    /// A mutant of `base`; `other` is a second input for splices.
    pub fn mutate(&self, rng: &mut Rng, base: &[u8], other: &[u8]) -> Vec<u8> {
        let mut out = base.to_vec();
        let n = 1 + rng.below(3) + if rng.one_in(4) { rng.below(10) } else { 0 };
        for _ in 0..n {
            self.once(rng, &mut out, other);
            if out.len() > self.max_len {
                out.truncate(self.max_len);
            }
        }
        out
    }

    fn token<'b>(&'b self, rng: &mut Rng) -> &'b str {
        if !self.dict.is_empty() && !rng.one_in(3) {
            self.dict[rng.below(self.dict.len())]
        } else {
            TEXT[rng.below(TEXT.len())]
        }
    }

    fn once(&self, rng: &mut Rng, out: &mut Vec<u8>, other: &[u8]) {
        let len = out.len();
        let at = rng.below(len + 1);
        match rng.below(17) {
            // Flip one bit.
            0 if len > 0 => out[rng.below(len)] ^= 1 << rng.below(8),
            // Overwrite a byte: random or interesting.
            1 if len > 0 => out[rng.below(len)] = rng.next_u64() as u8,
            2 if len > 0 => out[rng.below(len)] = *rng.pick(BYTES),
            // Insert a few bytes.
            3 => {
                let n = 1 + rng.below(8);
                let bytes: Vec<u8> =
                    (0..n).map(|_| if rng.one_in(2) { *rng.pick(BYTES) } else { rng.next_u64() as u8 }).collect();
                out.splice(at..at, bytes);
            }
            // Insert a token of the language or an interesting text.
            4 | 5 => {
                let t = self.token(rng).as_bytes().to_vec();
                out.splice(at..at, t);
            }
            // Delete a range.
            6 if len > 0 => {
                let from = rng.below(len);
                let most = if rng.one_in(4) { len - from } else { (len - from).min(16) };
                let n = 1 + rng.below(most);
                out.drain(from..from + n);
            }
            // Repeat a range (rarely a thousand times: long lines, long keys).
            7 if len > 0 => {
                let from = rng.below(len);
                let n = 1 + rng.below((len - from).min(64));
                let times = if self.max_len > 256 * 1024 && rng.one_in(32) {
                    // With a raised --max-len: grow towards it, to find costs that show only
                    // near the parsers' own limits (1 MiB manifests, 16 MiB frames).
                    (self.max_len / 2 + rng.below(self.max_len / 2)) / n
                } else if rng.one_in(16) {
                    100 + rng.below(1000)
                } else {
                    1 + rng.below(4)
                };
                let piece = out[from..from + n].repeat(times);
                out.splice(from..from, piece);
            }
            // Truncate.
            8 => out.truncate(at),
            // Splice: this input's head, the other's tail (or a piece of the other inside).
            9 | 10 if !other.is_empty() => {
                let j = rng.below(other.len());
                if rng.one_in(2) {
                    out.truncate(at);
                    out.extend_from_slice(&other[j..]);
                } else {
                    let n = 1 + rng.below((other.len() - j).min(256));
                    out.splice(at..at, other[j..j + n].iter().copied());
                }
            }
            // Deep nesting, closed or left open.
            11 if !self.nests.is_empty() => {
                let (open, close) = *rng.pick(self.nests);
                let depth = *rng.pick(DEPTHS);
                let mut piece = open.repeat(depth);
                if rng.one_in(2) {
                    piece.push_str(self.token(rng));
                    piece.push_str(&close.repeat(depth));
                }
                out.splice(at..at, piece.into_bytes());
            }
            // Replace a word (a run of letters, digits, `_`, `.`) with a token or a number.
            12 if len > 0 => {
                let mut i = rng.below(len);
                while i > 0 && is_word(out[i - 1]) {
                    i -= 1;
                }
                let mut j = i;
                while j < len && is_word(out[j]) {
                    j += 1;
                }
                let j = j.max(i + 1).min(len);
                let t = self.token(rng).as_bytes().to_vec();
                out.splice(i..j, t);
            }
            // Replace a number with an interesting one, or nudge a digit.
            13 => {
                let digits: Vec<usize> = (0..len).filter(|&i| out[i].is_ascii_digit()).collect();
                if digits.is_empty() {
                    return;
                }
                let mut i = *rng.pick(&digits);
                if rng.one_in(2) {
                    out[i] = b'0' + rng.below(10) as u8;
                    return;
                }
                while i > 0 && (out[i - 1].is_ascii_digit() || out[i - 1] == b'.') {
                    i -= 1;
                }
                let mut j = i;
                while j < len && (out[j].is_ascii_digit() || out[j] == b'.') {
                    j += 1;
                }
                let t = rng.pick(&TEXT[..29]).as_bytes().to_vec();
                out.splice(i..j, t);
            }
            // Line operations: duplicate, delete or move a line.
            14 | 15 => {
                let starts: Vec<usize> =
                    std::iter::once(0).chain((0..len).filter(|&i| out[i] == b'\n').map(|i| i + 1)).collect();
                let a = *rng.pick(&starts);
                let a_end = out[a..].iter().position(|&b| b == b'\n').map_or(len, |p| a + p + 1);
                let line = out[a..a_end].to_vec();
                match rng.below(3) {
                    0 => {
                        let b = *rng.pick(&starts);
                        out.splice(b..b, line);
                    }
                    1 => {
                        out.drain(a..a_end);
                    }
                    _ => {
                        out.drain(a..a_end);
                        let b = rng.below(out.len() + 1);
                        out.splice(b..b, line);
                    }
                }
            }
            // Whitespace: an indent, a tab, a line break.
            _ => {
                let ws = WHITESPACE[rng.below(WHITESPACE.len())];
                out.splice(at..at, ws.iter().copied());
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Catching panics.

thread_local! {
    /// While a target runs on this thread: `Some(None)`, then the panic's (message, place).
    static CAUGHT: RefCell<Option<Option<(String, String)>>> = const { RefCell::new(None) };
}

/// Installs (once) a panic hook that records panics on fuzzing threads instead of printing
/// them; other threads' panics print as usual.
fn install_hook() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let default = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            let message = info
                .payload()
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| info.payload().downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "(a panic without a message)".into());
            let place =
                info.location().map(|l| format!("{}:{}:{}", l.file(), l.line(), l.column())).unwrap_or_default();
            let recorded = CAUGHT
                .try_with(|c| match &mut *c.borrow_mut() {
                    Some(slot) => {
                        slot.get_or_insert((message.clone(), place.clone()));
                        true
                    }
                    None => false,
                })
                .unwrap_or(false);
            if !recorded {
                default(info);
            }
        }));
    });
}

/// Runs `f` on `input`: the outcome, or the panic's (message, place).
pub fn catch(f: fn(&[u8]) -> u64, input: &[u8]) -> Result<u64, (String, String)> {
    install_hook();
    CAUGHT.with(|c| *c.borrow_mut() = Some(None));
    let r = panic::catch_unwind(AssertUnwindSafe(|| f(input)));
    let caught = CAUGHT.with(|c| c.borrow_mut().take()).flatten();
    r.map_err(|_| caught.unwrap_or_else(|| ("(panic not recorded)".into(), String::new())))
}

// ---------------------------------------------------------------------------------------
// The run.

#[derive(Debug, Clone)]
pub struct Options {
    /// Executions in all (the seeds first).
    pub iterations: u64,
    pub seed: u64,
    /// An input that takes longer is a failure (`slow`); one still running at ten times
    /// this is a hang.
    pub timeout: Duration,
    /// Mutants are cut to this length (`None`: the target's own bound).
    pub max_len: Option<usize>,
    /// Inputs up to this length with a new outcome join the working corpus.
    pub keep_len: usize,
    /// Where failing inputs are saved (`None`: not saved).
    pub artifacts: Option<PathBuf>,
    /// Progress lines on stderr every few seconds.
    pub progress: bool,
}

impl Options {
    pub fn new(iterations: u64, seed: u64) -> Options {
        Options {
            iterations,
            seed,
            timeout: Duration::from_secs(1),
            max_len: None,
            keep_len: 8 * 1024,
            artifacts: None,
            progress: false,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A panic (in the parser, or an invariant of the target's checks).
    Crash,
    /// Finished, but slower than the timeout.
    Slow,
    /// Still running at ten times the timeout: the run stopped there.
    Hang,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Crash => "crash",
            Kind::Slow => "slow",
            Kind::Hang => "hang",
        }
    }
}

/// One failure: the first input that showed it, and how often it was seen.
#[derive(Debug, Clone)]
pub struct Finding {
    pub kind: Kind,
    /// The panic message, or the time taken.
    pub message: String,
    /// Where it panicked (`file:line:col`), empty for slow inputs and hangs.
    pub place: String,
    pub input: Vec<u8>,
    /// The crash cut down to what still panics at the same place.
    pub minimized: Option<Vec<u8>>,
    pub count: u64,
    pub elapsed: Duration,
    pub saved: Vec<PathBuf>,
}

#[derive(Debug, Clone)]
pub struct Report {
    pub target: &'static str,
    pub executions: u64,
    pub elapsed: Duration,
    pub seeds: usize,
    /// The working corpus at the end (seeds and inputs with new outcomes).
    pub corpus: usize,
    /// Distinct outcome shapes seen.
    pub outcomes: usize,
    /// Crashes (one per panic place), slow inputs and a hang, if any.
    pub findings: Vec<Finding>,
    pub slowest: Duration,
    pub slowest_input: Vec<u8>,
}

impl Report {
    pub fn execs_per_sec(&self) -> f64 {
        self.executions as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    pub fn count(&self, kind: Kind) -> u64 {
        self.findings.iter().filter(|f| f.kind == kind).map(|f| f.count).sum()
    }

    pub fn failed(&self) -> bool {
        !self.findings.is_empty()
    }

    /// A multi-line summary.
    pub fn summary(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "{}: {} executions in {:.1} s ({:.0}/s); {} crashes ({} distinct), {} slow, {} hangs",
            self.target,
            self.executions,
            self.elapsed.as_secs_f64(),
            self.execs_per_sec(),
            self.count(Kind::Crash),
            self.findings.iter().filter(|f| f.kind == Kind::Crash).count(),
            self.count(Kind::Slow),
            self.count(Kind::Hang),
        );
        let _ = writeln!(
            s,
            "  corpus {} seeds -> {} inputs, {} distinct outcomes; slowest input {:.3} ms (best of 3) ({} bytes): {}",
            self.seeds,
            self.corpus,
            self.outcomes,
            self.slowest.as_secs_f64() * 1e3,
            self.slowest_input.len(),
            preview(&self.slowest_input, 80)
        );
        for f in &self.findings {
            let _ = writeln!(
                s,
                "  {} x{} at {} ({:.3} ms): {}",
                f.kind.as_str().to_uppercase(),
                f.count,
                if f.place.is_empty() { "-" } else { &f.place },
                f.elapsed.as_secs_f64() * 1e3,
                f.message.lines().next().unwrap_or("")
            );
            let _ = writeln!(s, "    input ({} bytes): {}", f.input.len(), preview(&f.input, 160));
            if let Some(m) = &f.minimized {
                let _ = writeln!(s, "    minimized ({} bytes): {}", m.len(), preview(m, 160));
            }
            for p in &f.saved {
                let _ = writeln!(s, "    saved {}", p.display());
            }
        }
        s
    }
}

/// The slowest inputs so far, with their times.
type Slowest = Vec<(Duration, Vec<u8>)>;

/// Inputs kept as candidates for the slowest, re-timed at the end.
const SLOWEST: usize = 5;

/// The slowest of `candidates` by the best of three new timings, which leaves out the
/// first timing's noise from other processes.
fn retime(target: &Target, candidates: Vec<(Duration, Vec<u8>)>) -> (Duration, Vec<u8>) {
    candidates
        .into_iter()
        .map(|(_, input)| {
            let best = (0..3)
                .map(|_| {
                    let t0 = Instant::now();
                    let _ = catch(target.run, &input);
                    t0.elapsed()
                })
                .min()
                .unwrap_or_default();
            (best, input)
        })
        .max_by_key(|c| c.0)
        .unwrap_or_default()
}

/// Nanoseconds of one execution within which an input is picked at its full share.
const COST_BUDGET: u64 = 1_000_000;

/// The working corpus stops growing here.
const MAX_CORPUS: usize = 20_000;

/// What the fuzzing thread shares with the watchdog.
struct Shared {
    /// Nanoseconds since `base` at which the running input started, plus one; 0 when idle.
    started: AtomicU64,
    executions: AtomicU64,
    /// The running input.
    current: Mutex<Vec<u8>>,
    stop: AtomicBool,
}

/// Cuts a crashing input down to what still panics at the same place (chunks removed,
/// halving their size, at most `budget` tries).
pub fn minimize(f: fn(&[u8]) -> u64, input: &[u8], place: &str, budget: usize) -> Vec<u8> {
    let same = |c: &[u8]| matches!(catch(f, c), Err((_, p)) if p == place);
    let mut cur = input.to_vec();
    let mut chunk = (cur.len() / 2).max(1);
    let mut tries = 0;
    while tries < budget {
        let mut i = 0;
        let mut progressed = false;
        while i < cur.len() && tries < budget {
            let end = (i + chunk).min(cur.len());
            let mut cand = cur[..i].to_vec();
            cand.extend_from_slice(&cur[end..]);
            tries += 1;
            if same(&cand) {
                cur = cand;
                progressed = true;
            } else {
                i += chunk;
            }
        }
        if !progressed {
            if chunk == 1 {
                break;
            }
            chunk /= 2;
        }
    }
    cur
}

fn save(dir: &Path, kind: Kind, input: &[u8], suffix: &str) -> Option<PathBuf> {
    std::fs::create_dir_all(dir).ok()?;
    let path = dir.join(format!("{}-{:016x}{suffix}", kind.as_str(), hash(input)));
    std::fs::write(&path, input).ok()?;
    Some(path)
}

/// Fuzzes `target`: the seeds, then mutants, `opts.iterations` executions in all.
pub fn run(target: &'static Target, seeds: Vec<Vec<u8>>, opts: &Options) -> Report {
    let shared = Arc::new(Shared {
        started: AtomicU64::new(0),
        executions: AtomicU64::new(0),
        current: Mutex::default(),
        stop: AtomicBool::new(false),
    });
    let findings: Arc<Mutex<Vec<Finding>>> = Arc::default();
    let slowest: Arc<Mutex<Slowest>> = Arc::default();
    let base = Instant::now();
    let (done_tx, done_rx) = mpsc::channel();
    let worker = {
        let (shared, findings, slowest, opts) = (shared.clone(), findings.clone(), slowest.clone(), opts.clone());
        std::thread::Builder::new()
            .name(format!("fuzz-{}", target.name))
            // Parsers may recurse; give them the room a tokio worker or main thread has.
            .stack_size(8 << 20)
            .spawn(move || {
                let stats = fuzz_loop(target, seeds, &opts, &shared, &findings, &slowest, base);
                let _ = done_tx.send(stats);
            })
            .expect("spawning the fuzzing thread")
    };
    let hang_after = opts.timeout * 10;
    let mut last_progress = Instant::now();
    let (corpus, outcomes, seeds_n, hung) = loop {
        match done_rx.recv_timeout(Duration::from_millis(50)) {
            Ok((corpus, outcomes, seeds_n)) => break (corpus, outcomes, seeds_n, false),
            Err(mpsc::RecvTimeoutError::Disconnected) => break (0, 0, 0, false),
            Err(mpsc::RecvTimeoutError::Timeout) => {}
        }
        let started = shared.started.load(Ordering::Acquire);
        let now = base.elapsed();
        if started != 0 && now.saturating_sub(Duration::from_nanos(started - 1)) > hang_after {
            let input = shared.current.lock().unwrap_or_else(|e| e.into_inner()).clone();
            let mut saved = Vec::new();
            if let Some(dir) = &opts.artifacts {
                saved.extend(save(dir, Kind::Hang, &input, ""));
            }
            findings.lock().unwrap_or_else(|e| e.into_inner()).push(Finding {
                kind: Kind::Hang,
                message: format!("still running after {:.1} s; the run stopped here", hang_after.as_secs_f64()),
                place: String::new(),
                input,
                minimized: None,
                count: 1,
                elapsed: hang_after,
                saved,
            });
            // The fuzzing thread is stuck in the target; it is left behind.
            shared.stop.store(true, Ordering::Release);
            break (0, 0, 0, true);
        }
        if opts.progress && last_progress.elapsed() >= Duration::from_secs(5) {
            last_progress = Instant::now();
            let n = shared.executions.load(Ordering::Relaxed);
            let crashes = findings.lock().unwrap_or_else(|e| e.into_inner()).len();
            eprintln!(
                "  {}: {n} executions, {:.0}/s, {crashes} findings",
                target.name,
                n as f64 / now.as_secs_f64().max(1e-9)
            );
        }
    };
    if !hung {
        let _ = worker.join();
    }
    let candidates = slowest.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let (slowest, slowest_input) =
        if hung { candidates.into_iter().max_by_key(|c| c.0).unwrap_or_default() } else { retime(target, candidates) };
    let findings = findings.lock().unwrap_or_else(|e| e.into_inner()).clone();
    Report {
        target: target.name,
        executions: shared.executions.load(Ordering::Relaxed),
        elapsed: base.elapsed(),
        seeds: seeds_n,
        corpus,
        outcomes,
        findings,
        slowest,
        slowest_input,
    }
}

fn fuzz_loop(
    target: &'static Target,
    seeds: Vec<Vec<u8>>,
    opts: &Options,
    shared: &Shared,
    findings: &Mutex<Vec<Finding>>,
    slowest: &Mutex<Slowest>,
    base: Instant,
) -> (usize, usize, usize) {
    let mut rng = Rng::new(opts.seed ^ hash(target.name.as_bytes()));
    let mutator = Mutator { dict: target.dict, nests: target.nests, max_len: opts.max_len.unwrap_or(target.max_len) };
    let seeds_n = seeds.len();
    let mut corpus: Vec<Vec<u8>> = if seeds.is_empty() { vec![Vec::new()] } else { seeds };
    // What each corpus entry took when it ran: costly ones are mutated less often.
    let mut cost: Vec<Duration> = vec![Duration::ZERO; corpus.len()];
    let mut seen: HashSet<u64> = HashSet::new();
    let mut crash_at: HashMap<String, usize> = HashMap::new();
    // The fifth slowest time so far: faster inputs are not candidates for the slowest.
    let mut slow_floor = Duration::ZERO;
    for i in 0..opts.iterations {
        if shared.stop.load(Ordering::Relaxed) {
            break;
        }
        let input = if (i as usize) < seeds_n {
            corpus[i as usize].clone()
        } else {
            // Newer corpus entries (the ones that reached new outcomes) are picked more often.
            // A quarter of the time an original seed, so the corpus's drift into garbage
            // never takes over.
            // An input that took more than COST_BUDGET is taken only in proportion (a 15 ms
            // alias bomb once in fifteen picks), as libFuzzer gives slow inputs less energy.
            let pick = |rng: &mut Rng| {
                let n = corpus.len();
                let mut i = 0;
                for _ in 0..4 {
                    i = match rng.below(4) {
                        0 if seeds_n > 0 => rng.below(seeds_n),
                        1 => n - 1 - rng.below(n.min(64)),
                        _ => rng.below(n),
                    };
                    let c = cost[i].as_nanos() as u64;
                    if c <= COST_BUDGET || rng.next_u64() % c < COST_BUDGET {
                        break;
                    }
                }
                i
            };
            let a = pick(&mut rng);
            let b = pick(&mut rng);
            mutator.mutate(&mut rng, &corpus[a], &corpus[b])
        };
        {
            let mut cur = shared.current.lock().unwrap_or_else(|e| e.into_inner());
            cur.clear();
            cur.extend_from_slice(&input);
        }
        shared.started.store(base.elapsed().as_nanos() as u64 + 1, Ordering::Release);
        abort::running(&input);
        let t0 = Instant::now();
        let result = catch(target.run, &input);
        let took = t0.elapsed();
        abort::running(&[]);
        shared.started.store(0, Ordering::Release);
        shared.executions.fetch_add(1, Ordering::Relaxed);
        if took > slow_floor {
            let mut top = slowest.lock().unwrap_or_else(|e| e.into_inner());
            top.push((took, input.clone()));
            top.sort_by_key(|c| std::cmp::Reverse(c.0));
            top.truncate(SLOWEST);
            if top.len() == SLOWEST {
                slow_floor = top[SLOWEST - 1].0;
            }
        }
        if (i as usize) < seeds_n {
            cost[i as usize] = took;
        }
        match result {
            Ok(outcome) => {
                if seen.insert(outcome)
                    && (i as usize) >= seeds_n
                    && input.len() <= opts.keep_len
                    && corpus.len() < MAX_CORPUS
                {
                    cost.push(took);
                    corpus.push(input.clone());
                }
                // Slow twice: once could be the scheduler (the machine is shared).
                let took = if took > opts.timeout {
                    shared.started.store(base.elapsed().as_nanos() as u64 + 1, Ordering::Release);
                    let t1 = Instant::now();
                    let _ = catch(target.run, &input);
                    shared.started.store(0, Ordering::Release);
                    took.min(t1.elapsed())
                } else {
                    took
                };
                if took > opts.timeout {
                    let mut f = findings.lock().unwrap_or_else(|e| e.into_inner());
                    if let Some(prev) = f.iter_mut().find(|f| f.kind == Kind::Slow) {
                        prev.count += 1;
                        if took > prev.elapsed {
                            (prev.elapsed, prev.input) = (took, input.clone());
                            prev.message = format!("took {:.3} s", took.as_secs_f64());
                            if let Some(dir) = &opts.artifacts {
                                prev.saved.extend(save(dir, Kind::Slow, &input, ""));
                            }
                        }
                    } else {
                        let mut saved = Vec::new();
                        if let Some(dir) = &opts.artifacts {
                            saved.extend(save(dir, Kind::Slow, &input, ""));
                        }
                        f.push(Finding {
                            kind: Kind::Slow,
                            message: format!("took {:.3} s", took.as_secs_f64()),
                            place: String::new(),
                            input: input.clone(),
                            minimized: None,
                            count: 1,
                            elapsed: took,
                            saved,
                        });
                    }
                }
            }
            Err((message, place)) => {
                let mut f = findings.lock().unwrap_or_else(|e| e.into_inner());
                if let Some(&k) = crash_at.get(&place) {
                    f[k].count += 1;
                    continue;
                }
                drop(f);
                // Minimising runs the target again: under the watchdog like any execution.
                shared.started.store(base.elapsed().as_nanos() as u64 + 1, Ordering::Release);
                let minimized = minimize(target.run, &input, &place, 2000);
                shared.started.store(0, Ordering::Release);
                let mut saved = Vec::new();
                if let Some(dir) = &opts.artifacts {
                    saved.extend(save(dir, Kind::Crash, &input, ""));
                    saved.extend(save(dir, Kind::Crash, &minimized, ".min"));
                }
                let mut f = findings.lock().unwrap_or_else(|e| e.into_inner());
                crash_at.insert(place.clone(), f.len());
                f.push(Finding {
                    kind: Kind::Crash,
                    message,
                    place,
                    input,
                    minimized: Some(minimized),
                    count: 1,
                    elapsed: took,
                    saved,
                });
            }
        }
    }
    (corpus.len(), seen.len(), seeds_n)
}

/// Runs each of `inputs` once (a replay of saved artifacts): the outcome, or the panic.
pub fn replay(target: &Target, input: &[u8]) -> (Duration, Result<u64, (String, String)>) {
    let t0 = Instant::now();
    let r = catch(target.run, input);
    (t0.elapsed(), r)
}

/// A stack overflow or an allocation failure aborts the process, which no `catch_unwind`
/// sees: [`abort::save_to`] installs a SIGABRT handler that writes the running input to a
/// file first (with async-signal-safe calls only), then aborts as before.
pub mod abort {
    use std::ffi::CString;
    use std::path::Path;
    use std::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};

    static INPUT: AtomicPtr<u8> = AtomicPtr::new(std::ptr::null_mut());
    static LEN: AtomicUsize = AtomicUsize::new(0);
    static PATH: AtomicPtr<libc::c_char> = AtomicPtr::new(std::ptr::null_mut());

    /// Marks `input` as the one running (an empty slice: none).
    pub fn running(input: &[u8]) {
        if input.is_empty() {
            INPUT.store(std::ptr::null_mut(), Ordering::Release);
        } else {
            LEN.store(input.len(), Ordering::Release);
            INPUT.store(input.as_ptr().cast_mut(), Ordering::Release);
        }
    }

    extern "C" fn on_abort(sig: libc::c_int) {
        let (input, len, path) =
            (INPUT.load(Ordering::Acquire), LEN.load(Ordering::Acquire), PATH.load(Ordering::Acquire));
        if !input.is_null() && !path.is_null() {
            // SAFETY: open/write/close are async-signal-safe; `input` points at the running
            // input, alive until `running(&[])`; `path` is a leaked C string.
            unsafe {
                let fd = libc::open(path, libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC, 0o644);
                if fd >= 0 {
                    libc::write(fd, input.cast(), len);
                    libc::close(fd);
                    let msg = b"fuzz: the process aborted while running an input; it is saved as the abort artifact\n";
                    libc::write(2, msg.as_ptr().cast(), msg.len());
                }
            }
        }
        // SAFETY: restoring the default action and re-raising ends the process as before.
        unsafe {
            libc::signal(sig, libc::SIG_DFL);
            libc::raise(sig);
        }
    }

    /// From now on an abort saves the running input to `path`.
    pub fn save_to(path: &Path) {
        if let Some(dir) = path.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        let Ok(c) = CString::new(path.as_os_str().as_encoded_bytes()) else { return };
        PATH.store(c.into_raw(), Ordering::Release);
        let handler: extern "C" fn(libc::c_int) = on_abort;
        // SAFETY: installing a handler that only makes async-signal-safe calls.
        unsafe {
            libc::signal(libc::SIGABRT, handler as libc::sighandler_t);
        }
    }
}
