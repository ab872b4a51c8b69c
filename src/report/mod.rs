//! Reports: one result tree ([`RunResults`]), many renderings. `results.json` is the
//! canonical record; from it come `report.html` (tera template, SVG charts drawn by
//! [`svg`], strict CSP), `results.csv` and `metrics.csv`, `summary.txt`, `junit.xml` and
//! `summary.md`. Every file is written atomically; `mcpscript report` re-renders any of
//! them from a stored `results.json`.

pub mod csv;
pub mod html;
pub mod junit;
pub mod markdown;
mod page;
pub mod svg;
pub mod text;

use crate::script::results::{write_atomic, RunResults};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// One output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Format {
    Json,
    Html,
    /// `results.csv` and `metrics.csv`.
    Csv,
    Text,
    Junit,
    Markdown,
}

impl Format {
    pub const ALL: [Format; 6] =
        [Format::Json, Format::Html, Format::Csv, Format::Text, Format::Junit, Format::Markdown];

    pub fn name(self) -> &'static str {
        match self {
            Format::Json => "json",
            Format::Html => "html",
            Format::Csv => "csv",
            Format::Text => "txt",
            Format::Junit => "junit",
            Format::Markdown => "md",
        }
    }

    /// The files this format writes.
    pub fn files(self) -> &'static [&'static str] {
        match self {
            Format::Json => &["results.json"],
            Format::Html => &["report.html"],
            Format::Csv => &["results.csv", "metrics.csv"],
            Format::Text => &["summary.txt"],
            Format::Junit => &["junit.xml"],
            Format::Markdown => &["summary.md"],
        }
    }

    /// `--format LIST`: comma-separated names (`json,html,csv,txt,junit,md`, or `all`).
    /// `results.json` is always written by `run` (it is the record), whatever the list.
    pub fn parse_list(list: &str) -> Result<Vec<Format>, String> {
        let mut out = Vec::new();
        for word in list.split(',').map(str::trim).filter(|w| !w.is_empty()) {
            let f = match word.to_ascii_lowercase().as_str() {
                "all" => {
                    out.extend(Format::ALL);
                    continue;
                }
                "json" => Format::Json,
                "html" => Format::Html,
                "csv" => Format::Csv,
                "txt" | "text" => Format::Text,
                "junit" | "xml" => Format::Junit,
                "md" | "markdown" => Format::Markdown,
                other => {
                    return Err(format!(
                        "unknown report format '{other}': expected a comma-separated list of json, html, csv, txt, junit, md (or all)"
                    ))
                }
            };
            out.push(f);
        }
        if out.is_empty() {
            return Err("no report format given: expected json, html, csv, txt, junit, md or all".into());
        }
        out.sort();
        out.dedup();
        Ok(out)
    }
}

/// What writing the reports produced: each file and the time it took.
#[derive(Debug, Default)]
pub struct Written {
    pub files: Vec<PathBuf>,
    pub elapsed_ms: f64,
}

/// Where report templates are looked up before the embedded copies: `reports/templates/`
/// under the current folder (users may edit them), or `MCPSCRIPT_TEMPLATES`.
pub fn templates_dir() -> Option<PathBuf> {
    if let Some(d) = std::env::var_os("MCPSCRIPT_TEMPLATES") {
        return Some(PathBuf::from(d));
    }
    let d = PathBuf::from("reports").join("templates");
    d.is_dir().then_some(d)
}

/// Renders `formats` of `r` into `dir` (created if needed), each file atomically. A format
/// that fails does not stop the others: every failure is listed in the error, after the
/// rest were written.
pub fn write(r: &RunResults, dir: &Path, formats: &[Format]) -> Result<Written, String> {
    let started = Instant::now();
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let mut files = Vec::new();
    let mut errors = Vec::new();
    for f in formats {
        let rendered: Result<Vec<(&str, Vec<u8>)>, String> = match f {
            Format::Json => {
                match r.write_to(dir) {
                    Ok(path) => files.push(path),
                    Err(e) => errors.push(format!("cannot write {}: {e}", dir.join("results.json").display())),
                }
                continue;
            }
            Format::Html => html::render(r, templates_dir().as_deref()).map(|s| vec![("report.html", s.into_bytes())]),
            Format::Csv => {
                csv::results_csv(r).and_then(|a| Ok(vec![("results.csv", a), ("metrics.csv", csv::metrics_csv(r)?)]))
            }
            Format::Text => Ok(vec![("summary.txt", text::render(r).into_bytes())]),
            Format::Junit => junit::render(r).map(|s| vec![("junit.xml", s.into_bytes())]),
            Format::Markdown => Ok(vec![("summary.md", markdown::render(r, markdown::FULL_LIMIT).into_bytes())]),
        };
        match rendered {
            Ok(outputs) => {
                for (name, bytes) in outputs {
                    let path = dir.join(name);
                    match write_atomic(&path, &bytes) {
                        Ok(()) => files.push(path),
                        Err(e) => errors.push(format!("cannot write {}: {e}", path.display())),
                    }
                }
            }
            Err(e) => errors.push(format!("{}: {e}", f.files().join(" and "))),
        }
    }
    if errors.is_empty() {
        Ok(Written { files, elapsed_ms: started.elapsed().as_secs_f64() * 1000.0 })
    } else {
        Err(errors.join("; "))
    }
}
