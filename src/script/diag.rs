//! Script errors for people: a syntax or validation problem becomes a [`Diagnostic`]
//! (file:line:column, message, the source line with a caret, a hint); a runtime error
//! becomes an [`ErrorReport`] with the script stack (file:line of every call on the way)
//! and, for an unknown function, the nearest registered name.

use super::resolver::SourceMap;
use super::results::{ErrorKind, ErrorReport, Frame};
use rhai::{EvalAltResult, Position};
use std::fmt;

/// One problem at one place in a script.
#[derive(Debug, Clone, PartialEq)]
pub struct Diagnostic {
    pub file: String,
    pub line: Option<usize>,
    pub column: Option<usize>,
    pub message: String,
    pub source_line: Option<String>,
    pub hint: Option<String>,
}

impl Diagnostic {
    pub fn new(file: &str, pos: Position, message: impl Into<String>, sources: &SourceMap) -> Diagnostic {
        let source_line =
            pos.line().and_then(|l| sources.get(file).and_then(|t| t.lines().nth(l - 1).map(str::to_string)));
        Diagnostic {
            file: file.to_string(),
            line: pos.line(),
            column: pos.position(),
            message: message.into(),
            source_line,
            hint: None,
        }
    }

    pub fn with_hint(mut self, hint: Option<String>) -> Diagnostic {
        self.hint = hint;
        self
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", location(&self.file, self.line, self.column), self.message)?;
        if let (Some(line), Some(src)) = (self.line, &self.source_line) {
            f.write_str(&excerpt(line, self.column, src))?;
        }
        if let Some(h) = &self.hint {
            write!(f, "\n  hint: {h}")?;
        }
        Ok(())
    }
}

/// The script does not compile or does not validate.
#[derive(Debug, Clone, PartialEq)]
pub struct CompileError(pub Vec<Diagnostic>);

impl fmt::Display for CompileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\nerror: ")?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

impl std::error::Error for CompileError {}

/// `file:line:column`, leaving out what is unknown.
pub fn location(file: &str, line: Option<usize>, column: Option<usize>) -> String {
    match (line, column) {
        (Some(l), Some(c)) => format!("{file}:{l}:{c}"),
        (Some(l), None) => format!("{file}:{l}"),
        _ => file.to_string(),
    }
}

/// The source line under its number, and a caret under the column.
fn excerpt(line: usize, column: Option<usize>, src: &str) -> String {
    let num = line.to_string();
    let gutter = " ".repeat(num.len());
    let chars: Vec<char> = src.chars().collect();
    // A long line (minified, generated) is cut to a window around the column.
    let col = column.unwrap_or(1).saturating_sub(1).min(chars.len());
    let start = if chars.len() > EXCERPT_CHARS { col.saturating_sub(EXCERPT_CHARS / 2) } else { 0 };
    let end = (start + EXCERPT_CHARS).min(chars.len());
    let start = end.saturating_sub(EXCERPT_CHARS).min(start);
    let (before, after) = (if start > 0 { "…" } else { "" }, if end < chars.len() { "…" } else { "" });
    let shown: String = chars[start..end].iter().collect();
    let mut out = format!("\n {num} | {before}{shown}{after}");
    if column.is_some() {
        let lead = if start > 0 { " " } else { "" };
        let pad: String = chars[start..col].iter().map(|&ch| if ch == '\t' { '\t' } else { ' ' }).collect();
        out.push_str(&format!("\n {gutter} | {lead}{pad}^"));
    }
    out
}

/// Characters of a source line shown under an error at most.
const EXCERPT_CHARS: usize = 120;

/// Edit distance between two short strings, counting a swap of neighbours as one edit
/// (optimal string alignment), so `wiat` is one edit from `wait`.
pub fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            d[i][j] = (d[i - 1][j] + 1).min(d[i][j - 1] + 1).min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                d[i][j] = d[i][j].min(d[i - 2][j - 2] + 1);
            }
        }
    }
    d[a.len()][b.len()]
}

/// The candidate nearest to `name`, if it is near enough to be a likely typo.
pub fn suggest<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let limit = (name.chars().count() / 3).max(1);
    let lower = name.to_ascii_lowercase();
    candidates
        .into_iter()
        .filter(|c| *c != name)
        .map(|c| (if c.to_ascii_lowercase() == lower { 0 } else { edit_distance(name, c) }, c))
        .filter(|(d, c)| *d <= limit || (c.len() > 3 && (c.starts_with(name) || name.starts_with(*c))))
        .min_by_key(|(d, c)| (*d, c.len()))
        .map(|(_, c)| c)
}

/// What a runtime error report needs to know about the script.
pub trait FnLookup {
    /// Signatures of the functions called `name` (`stats::mean` for module functions).
    fn signatures(&self, name: &str) -> Vec<String>;
    /// Every callable name in the namespace of `name` (`stats::...` or global).
    fn names_like(&self, name: &str) -> Vec<String>;
}

/// Turns a script's runtime error into a report with kind, position and stack.
pub fn report(err: &EvalAltResult, main_file: &str, sources: &SourceMap, fns: &dyn FnLookup) -> ErrorReport {
    let mut frames = Vec::new();
    let mut file = main_file.to_string();
    let mut cur = err;
    loop {
        match cur {
            EvalAltResult::ErrorInFunctionCall(name, src, inner, pos) => {
                let function = if name.starts_with("anon$") {
                    "closure".to_string()
                } else if name.starts_with("stage '") {
                    name.clone()
                } else {
                    format!("fn '{name}'")
                };
                frames.push(Frame { function, file: file.clone(), line: pos.line(), column: pos.position() });
                if !src.is_empty() {
                    file = src.clone();
                }
                cur = inner;
            }
            EvalAltResult::ErrorInModule(name, inner, pos) => {
                // A module that was never loaded (refused, not found) adds no frame.
                if sources.get(name).is_some() {
                    frames.push(Frame {
                        function: format!("import \"{name}\""),
                        file: file.clone(),
                        line: pos.line(),
                        column: pos.position(),
                    });
                    file = name.clone();
                }
                cur = inner;
            }
            _ => break,
        }
    }
    // A closure frame right under its stage frame says nothing new.
    frames.dedup_by(|inner, outer| inner.function == "closure" && outer.function.starts_with("stage '"));
    frames.reverse();
    let pos = cur.position();
    let (kind, message, hint) = describe(cur, fns);
    ErrorReport { kind, message, file, line: pos.line(), column: pos.position(), stack: frames, hint }
}

fn describe(e: &EvalAltResult, fns: &dyn FnLookup) -> (ErrorKind, String, Option<String>) {
    match e {
        EvalAltResult::ErrorTerminated(token, _) if token.to_string() == "timeout" => {
            (ErrorKind::Timeout, "the script ran out of time (--timeout) and was stopped".into(), None)
        }
        EvalAltResult::ErrorTerminated(..) => (ErrorKind::Cancelled, "the script was cancelled (Ctrl-C)".into(), None),
        EvalAltResult::ErrorTooManyOperations(_) => (
            ErrorKind::Limit,
            "the script exceeded its operation limit and was stopped: a runaway loop?".into(),
            Some("if the work is real, raise the limit with --max-operations N (0 = unlimited)".into()),
        ),
        EvalAltResult::ErrorStackOverflow(_) => (
            ErrorKind::Limit,
            "calls nested too deeply (the call-depth limit was reached): runaway recursion?".into(),
            None,
        ),
        EvalAltResult::ErrorDataTooLarge(what, _) => {
            (ErrorKind::Limit, format!("{what} exceeds the sandbox's size limit"), None)
        }
        EvalAltResult::ErrorTooManyModules(_) => {
            (ErrorKind::Limit, "too many modules imported (an import cycle?)".into(), None)
        }
        EvalAltResult::ErrorTooManyVariables(_) => (ErrorKind::Limit, "too many variables defined".into(), None),
        EvalAltResult::ErrorRuntime(v, _) if v.is_string() => (ErrorKind::Runtime, v.to_string(), None),
        EvalAltResult::ErrorFunctionNotFound(sig, _) => {
            let name = sig.split([' ', '(']).next().unwrap_or(sig).to_string();
            (ErrorKind::Runtime, format!("function not found: {sig}"), function_hint(&name, fns))
        }
        EvalAltResult::ErrorParsing(p, _) => (ErrorKind::Runtime, format!("syntax error: {p}"), None),
        other => (ErrorKind::Runtime, strip_position(&other.to_string(), other.position()), None),
    }
}

/// For a call that matched no function: the overloads of that name, or the nearest name.
pub fn function_hint(name: &str, fns: &dyn FnLookup) -> Option<String> {
    let sigs = fns.signatures(name);
    if !sigs.is_empty() {
        return Some(format!("{name} exists with other parameters: {}", sigs.join("; ")));
    }
    let names = fns.names_like(name);
    suggest(name, names.iter().map(String::as_str)).map(|s| format!("did you mean {s}?"))
}

fn strip_position(s: &str, pos: Position) -> String {
    let suffix = format!(" ({pos})");
    s.strip_suffix(&suffix).unwrap_or(s).to_string()
}

/// The report as printed on stderr: location, message, source line and caret, stack, hint.
pub fn render(r: &ErrorReport, sources: &SourceMap) -> String {
    let mut out = format!("{}: {}", location(&r.file, r.line, r.column), r.message);
    if let Some(line) = r.line {
        if let Some(src) = sources.get(&r.file).and_then(|t| t.lines().nth(line - 1).map(str::to_string)) {
            out.push_str(&excerpt(line, r.column, &src));
        }
    }
    for f in &r.stack {
        out.push_str(&format!("\n  in {} called at {}", f.function, location(&f.file, f.line, f.column)));
    }
    if let Some(h) = &r.hint {
        out.push_str(&format!("\n  hint: {h}"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_lines_are_cut_around_the_column() {
        let src = format!("let x = [{}oops{}];", "1,".repeat(100_000), "2,".repeat(100_000));
        let col = src.find("oops").unwrap() + 1;
        let e = excerpt(7, Some(col), &src);
        assert!(e.len() < 400, "{} bytes", e.len());
        let lines: Vec<&str> = e.lines().collect();
        assert!(lines[1].starts_with(" 7 | …") && lines[1].ends_with('…'), "{e}");
        // The caret still points at the column.
        let caret = lines[2].chars().count() - 1;
        assert_eq!(lines[1].chars().nth(caret), Some('o'), "{e}");
        assert_eq!(excerpt(1, Some(5), "let x = 1;"), "\n 1 | let x = 1;\n   |     ^");
    }

    #[test]
    fn suggests_near_names_only() {
        let names = ["connect", "check", "threshold", "stage", "metric"];
        assert_eq!(suggest("conect", names), Some("connect"));
        assert_eq!(suggest("chek", names), Some("check"));
        assert_eq!(suggest("treshold", names), Some("threshold"));
        assert_eq!(suggest("zzzzzz", names), None);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("wiat", "wait"), 1);
        assert_eq!(suggest("wiat", ["wait", "n"]), Some("wait"));
    }

    #[test]
    fn renders_a_caret_under_the_column() {
        let sources = SourceMap::default();
        sources.insert("a.rhai", "let x = 1;\nlet y = foo(x);\n".into());
        let d = Diagnostic::new("a.rhai", Position::new(2, 9), "unknown function foo", &sources)
            .with_hint(Some("did you mean for?".into()));
        assert_eq!(
            d.to_string(),
            "a.rhai:2:9: unknown function foo\n 2 | let y = foo(x);\n   |         ^\n  hint: did you mean for?"
        );
    }
}
