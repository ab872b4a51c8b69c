//! The fuzz runner (see `fuzz/README.md`):
//!
//! ```text
//! cargo run --release --example fuzz -- TARGET|all [--iterations N] [--seed S]
//!                                       [--timeout-ms MS] [--max-len BYTES] [--no-artifacts]
//! cargo run --release --example fuzz -- TARGET --replay FILE...
//! cargo run --release --example fuzz -- --list
//! ```
//!
//! Prints executions, executions per second, crashes, slow inputs, hangs and the slowest
//! input per target; failing inputs go to `fuzz/artifacts/TARGET/`. Exits 1 when anything
//! failed.

#[path = "../fuzz/harness/mod.rs"]
mod harness;

use harness::{Kind, Options, Target};
use std::process::ExitCode;
use std::time::Duration;

const USAGE: &str =
    "usage: fuzz TARGET|all [--iterations N] [--seed S] [--timeout-ms MS] [--max-len BYTES] [--no-artifacts]
       fuzz TARGET --replay FILE...
       fuzz --list";

fn main() -> ExitCode {
    match run(std::env::args().skip(1).collect()) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("fuzz: {e}\n{USAGE}");
            ExitCode::from(2)
        }
    }
}

fn run(args: Vec<String>) -> Result<ExitCode, String> {
    let mut names: Vec<String> = Vec::new();
    let mut opts = Options::new(100_000, 1);
    opts.progress = true;
    let mut artifacts = true;
    let mut replay: Option<Vec<String>> = None;
    let mut it = args.into_iter();
    while let Some(a) = it.next() {
        let mut value = |name: &str| it.next().ok_or_else(|| format!("{name} needs a value"));
        match a.as_str() {
            "--list" => {
                for t in harness::targets::ALL {
                    println!("{:<10} {}", t.name, t.about);
                }
                return Ok(ExitCode::SUCCESS);
            }
            "--iterations" | "-n" => opts.iterations = number(&value(&a)?)?,
            "--seed" | "-s" => opts.seed = number(&value(&a)?)?,
            "--timeout-ms" => opts.timeout = Duration::from_millis(number(&value(&a)?)?),
            "--max-len" => opts.max_len = Some(number(&value(&a)?)? as usize),
            "--no-artifacts" => artifacts = false,
            "--replay" => replay = Some(it.by_ref().collect()),
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(ExitCode::SUCCESS);
            }
            s if s.starts_with('-') => return Err(format!("unknown option {s}")),
            s => names.push(s.to_string()),
        }
    }
    let targets: Vec<&'static Target> = match names.as_slice() {
        [] => return Err("name a target, or all".into()),
        [all] if all == "all" => harness::targets::ALL.iter().collect(),
        names => names
            .iter()
            .map(|n| {
                harness::target(n).ok_or_else(|| {
                    let known: Vec<&str> = harness::targets::ALL.iter().map(|t| t.name).collect();
                    format!("no target {n} (targets: {})", known.join(", "))
                })
            })
            .collect::<Result<_, _>>()?,
    };
    if let Some(files) = replay {
        let [target] = targets.as_slice() else { return Err("--replay takes one target".into()) };
        return Ok(replay_files(target, &files));
    }
    let mut failed = false;
    for target in targets {
        let dir = harness::root().join("fuzz/corpus").join(target.name);
        let seeds: Vec<Vec<u8>> = harness::load_corpus(&dir)
            .map_err(|e| format!("cannot read the corpus {}: {e}", dir.display()))?
            .into_iter()
            .map(|(_, bytes)| bytes)
            .collect();
        let artifact_dir = harness::root().join("fuzz/artifacts").join(target.name);
        let mut opts = opts.clone();
        if artifacts {
            harness::abort::save_to(&artifact_dir.join("abort"));
            opts.artifacts = Some(artifact_dir);
        }
        eprintln!("{}: {} seeds, {} executions, seed {}", target.name, seeds.len(), opts.iterations, opts.seed);
        let report = harness::run(target, seeds, &opts);
        print!("{}", report.summary());
        failed |= report.failed();
        if report.count(Kind::Hang) > 0 {
            // The fuzzing thread is stuck in the target and cannot be stopped: end here.
            println!("fuzz: stopped at a hang");
            std::process::exit(1);
        }
    }
    Ok(if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}

fn number(s: &str) -> Result<u64, String> {
    s.replace('_', "").parse().map_err(|_| format!("not a number: {s}"))
}

fn replay_files(target: &Target, files: &[String]) -> ExitCode {
    let mut failed = false;
    for f in files {
        let input = match std::fs::read(f) {
            Ok(b) => b,
            Err(e) => {
                eprintln!("{f}: {e}");
                failed = true;
                continue;
            }
        };
        let (took, result) = harness::replay(target, &input);
        match result {
            Ok(outcome) => println!("{f}: ok in {:.3} ms (outcome {outcome:016x})", took.as_secs_f64() * 1e3),
            Err((message, place)) => {
                failed = true;
                println!("{f}: CRASH at {place} after {:.3} ms: {message}", took.as_secs_f64() * 1e3);
            }
        }
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
