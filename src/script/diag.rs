//! Script errors for people: a syntax or validation problem becomes a [`Diagnostic`]
//! (file:line:column, message, the source line with a caret, a hint); a runtime error
//! becomes an [`ErrorReport`] with the script stack (file:line of every call on the way)
//! and, for an unknown function, the nearest registered name.

use super::resolver::SourceMap;
use super::results::{ErrorReport, Frame, ScriptErrorKind};
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

fn describe(e: &EvalAltResult, fns: &dyn FnLookup) -> (ScriptErrorKind, String, Option<String>) {
    match e {
        EvalAltResult::ErrorTerminated(token, _) if token.to_string() == "timeout" => {
            (ScriptErrorKind::Timeout, "the script ran out of time (--timeout) and was stopped".into(), None)
        }
        EvalAltResult::ErrorTerminated(token, _) if token.to_string() == super::engine::MEMORY_TOKEN => (
            ScriptErrorKind::Limit,
            "the script was stopped: mcpscript's memory grew past its limit (--max-memory) while it ran".into(),
            Some("a runaway script holding large strings or arrays? if the memory is needed, raise --max-memory (e.g. 4GiB; 0 = unlimited)".into()),
        ),
        EvalAltResult::ErrorTerminated(..) => (ScriptErrorKind::Cancelled, "the script was cancelled (Ctrl-C)".into(), None),
        EvalAltResult::ErrorTooManyOperations(_) => (
            ScriptErrorKind::Limit,
            "the script exceeded its operation limit and was stopped: a runaway loop?".into(),
            Some("if the work is real, raise the limit with --max-operations N (0 = unlimited)".into()),
        ),
        EvalAltResult::ErrorStackOverflow(_) => (
            ScriptErrorKind::Limit,
            "calls nested too deeply (the call-depth limit was reached): runaway recursion?".into(),
            None,
        ),
        EvalAltResult::ErrorDataTooLarge(what, _) => {
            (ScriptErrorKind::Limit, format!("{what} exceeds the sandbox's size limit"), None)
        }
        EvalAltResult::ErrorTooManyModules(_) => {
            (ScriptErrorKind::Limit, "too many modules imported (an import cycle?)".into(), None)
        }
        EvalAltResult::ErrorTooManyVariables(_) => (ScriptErrorKind::Limit, "too many variables defined".into(), None),
        EvalAltResult::ErrorRuntime(v, _) if v.is_string() => (ScriptErrorKind::Runtime, v.to_string(), None),
        EvalAltResult::ErrorFunctionNotFound(sig, _) => not_found(sig, fns),
        EvalAltResult::ErrorParsing(p, _) => (ScriptErrorKind::Runtime, format!("syntax error: {p}"), None),
        other => (ScriptErrorKind::Runtime, script_words(&strip_position(&other.to_string(), other.position())), None),
    }
}

/// A call that matched no function: Rhai's `name (types...)` in script words. A named
/// function called with arguments it does not take (or a name that does not exist) is bad
/// input, like a wrong `--set` (exit 2); an operator on values it does not apply to (`() + 1`,
/// usually a missing field) stays a runtime error.
fn not_found(sig: &str, fns: &dyn FnLookup) -> (ScriptErrorKind, String, Option<String>) {
    let (name, args) = match sig.split_once(" (") {
        Some((name, rest)) => (name.trim(), rest.strip_suffix(')').unwrap_or(rest)),
        None => (sig.trim(), ""),
    };
    let args = script_words(args);
    if name.starts_with("anon$") {
        return (ScriptErrorKind::Param, format!("the closure does not take ({args})"), None);
    }
    let named = name.chars().next().is_some_and(|c| c.is_alphabetic() || c == '_');
    if !named {
        let message = match args.split_once(", ") {
            Some((a, b)) => format!("operator {name} does not apply to {a} and {b}"),
            None => format!("operator {name} does not apply to {args}"),
        };
        return (ScriptErrorKind::Runtime, message, None);
    }
    let call = format!("{name}({args})");
    if !fns.signatures(name).is_empty() {
        return (ScriptErrorKind::Param, format!("wrong argument types: {call}"), function_hint(name, fns));
    }
    (ScriptErrorKind::Param, format!("function not found: {call}"), function_hint(name, fns))
}

/// Rust's words in a message from Rhai (types, results, paths) replaced by the words scripts
/// use: `&str | ImmutableString | String` and `ImmutableString` are `string`, `i64` and
/// `i128` `int`, `f64` `float`, `Map` `map`, `Array` `array`, `Dynamic` `any`, and
/// `Result<T, Box<EvalAltResult>>` is `T`. Text a script or a server wrote never goes
/// through here.
pub fn script_words(text: &str) -> String {
    let mut s =
        text.replace("&str | ImmutableString | String", "string").replace("&mut ", "").replace("&str", "string");
    for wrapper in ["Result<", "RhaiResultOf<", "Box<"] {
        while let Some(inner) = unwrap_generic(&s, wrapper) {
            s = inner;
        }
    }
    let mut out = String::with_capacity(s.len());
    let mut token = String::new();
    for ch in s.chars().chain(std::iter::once('\0')) {
        if ch.is_alphanumeric() || ch == '_' || ch == ':' {
            token.push(ch);
            continue;
        }
        out.push_str(script_word(&token));
        token.clear();
        if ch != '\0' {
            out.push(ch);
        }
    }
    out.replace("Range<int>", "range").replace("RangeInclusive<int>", "range=")
}

/// `WRAPPER<T, ...>` (at a word boundary) replaced by `T`, once; `None` when there is none.
fn unwrap_generic(s: &str, wrapper: &str) -> Option<String> {
    let start = s
        .match_indices(wrapper)
        .map(|(i, _)| i)
        .find(|&i| s[..i].chars().next_back().is_none_or(|c| !(c.is_alphanumeric() || c == '_' || c == ':')))?;
    let body = start + wrapper.len();
    let (mut depth, mut first_end, mut end) = (0usize, None, None);
    for (i, c) in s[body..].char_indices() {
        match c {
            '<' => depth += 1,
            '>' if depth == 0 => {
                end = Some(body + i);
                break;
            }
            '>' => depth -= 1,
            ',' if depth == 0 && first_end.is_none() => first_end = Some(body + i),
            _ => {}
        }
    }
    let end = end?;
    let first = &s[body..first_end.unwrap_or(end)];
    Some(format!("{}{}{}", &s[..start], first.trim(), &s[end + 1..]))
}

fn script_word(token: &str) -> &str {
    // Rust paths (`alloc::string::String`) lose their crate; `load::closed` is a script name.
    let word = match token.split_once("::") {
        Some((krate, _)) if ["rhai", "alloc", "core", "std", "mcpscript"].contains(&krate) => {
            token.rsplit("::").next().unwrap_or(token)
        }
        _ => token,
    };
    match word {
        "i8" | "i16" | "i32" | "i64" | "i128" | "u8" | "u16" | "u32" | "u64" | "u128" | "isize" | "usize" | "INT" => {
            "int"
        }
        "f32" | "f64" | "FLOAT" => "float",
        "ImmutableString" | "String" | "SmartString" | "str" => "string",
        "Array" => "array",
        "Map" => "map",
        "Blob" => "blob",
        "Dynamic" => "any",
        "FnPtr" => "Fn",
        "Instant" => "timestamp",
        "EvalAltResult" => "error",
        w => w,
    }
}

/// For a call that matched no function: the overloads of that name, or the nearest name.
pub fn function_hint(name: &str, fns: &dyn FnLookup) -> Option<String> {
    let mut seen = std::collections::BTreeSet::new();
    let sigs: Vec<String> =
        fns.signatures(name).iter().map(|s| script_words(s)).filter(|s| seen.insert(s.clone())).collect();
    if !sigs.is_empty() {
        return Some(format!("{name} exists with other parameters: {}", sigs.join("; ")));
    }
    let names = fns.names_like(name);
    crate::util::suggest(name, names.iter().map(String::as_str)).map(|s| format!("did you mean {s}?"))
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
    fn rust_types_read_as_script_words() {
        assert_eq!(script_words("&str | ImmutableString | String, i64"), "string, int");
        assert_eq!(
            script_words("parse_int(string: &str) -> Result<i64, Box<EvalAltResult>>"),
            "parse_int(string: string) -> int"
        );
        assert_eq!(script_words("abs(x: i128) -> Result<i128, Box<EvalAltResult>>"), "abs(x: int) -> int");
        assert_eq!(script_words("push(array: &mut Array, item: Dynamic)"), "push(array: array, item: any)");
        assert_eq!(script_words("f(m: Map, f: FnPtr, x: f64, r: Range<i64>)"), "f(m: map, f: Fn, x: float, r: range)");
        assert_eq!(script_words("alloc::string::String"), "string");
        // Script names stay: a namespace, a function, a type of mcpscript's.
        assert_eq!(script_words("load::closed(Session, Stringy)"), "load::closed(Session, Stringy)");
    }

    #[test]
    fn a_call_without_a_signature_says_which_exist_in_script_words() {
        struct Fns;
        impl FnLookup for Fns {
            fn signatures(&self, name: &str) -> Vec<String> {
                match name {
                    "check" => vec!["check(cond: bool, message: string) -> bool".into()],
                    "abs" => vec![
                        "abs(x: f64) -> f64".into(),
                        "abs(x: i128) -> Result<i128, Box<EvalAltResult>>".into(),
                        "abs(x: i64) -> Result<i64, Box<EvalAltResult>>".into(),
                    ],
                    _ => vec![],
                }
            }
            fn names_like(&self, _: &str) -> Vec<String> {
                vec!["check".into(), "ping".into()]
            }
        }
        let (kind, message, hint) = not_found("check (&str | ImmutableString | String, i64)", &Fns);
        assert_eq!(kind, ScriptErrorKind::Param);
        assert_eq!(message, "wrong argument types: check(string, int)");
        assert_eq!(
            hint.as_deref(),
            Some("check exists with other parameters: check(cond: bool, message: string) -> bool")
        );
        let (_, _, hint) = not_found("abs (&str | ImmutableString | String)", &Fns);
        assert_eq!(
            hint.as_deref(),
            Some("abs exists with other parameters: abs(x: float) -> float; abs(x: int) -> int")
        );
        let (kind, message, hint) = not_found("pingg (Session)", &Fns);
        assert_eq!((kind, message.as_str()), (ScriptErrorKind::Param, "function not found: pingg(Session)"));
        assert_eq!(hint.as_deref(), Some("did you mean ping?"));
        // An operator on values it does not apply to is usually a missing field: a runtime error.
        let (kind, message, _) = not_found("+ ((), i64)", &Fns);
        assert_eq!((kind, message.as_str()), (ScriptErrorKind::Runtime, "operator + does not apply to () and int"));
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
