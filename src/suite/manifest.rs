//! The suite file and scenario manifests as YAML (`yaml_serde`) with serde types that refuse
//! unknown keys. Parsing keeps every problem's place: a YAML syntax error, an unknown key
//! (with the nearest known key suggested), a value of the wrong type or a malformed
//! duration becomes a [`ManifestError`] naming file, line and column. Durations are strings
//! with a unit (`"30s"`), checked while parsing.

use crate::client::target::split_command;
use crate::util::duration::parse_duration;
use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::time::Duration;

/// One problem in one manifest, at a place when it is known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestError {
    pub file: String,
    pub line: Option<usize>,
    pub column: Option<usize>,
    pub message: String,
    pub hint: Option<String>,
}

impl ManifestError {
    pub fn new(file: &str, message: impl Into<String>) -> ManifestError {
        ManifestError { file: file.to_string(), line: None, column: None, message: message.into(), hint: None }
    }

    pub fn at(mut self, pos: Option<(usize, usize)>) -> ManifestError {
        if let Some((l, c)) = pos {
            self.line = Some(l);
            self.column = Some(c);
        }
        self
    }

    pub fn hint(mut self, hint: Option<String>) -> ManifestError {
        self.hint = hint;
        self
    }
}

impl fmt::Display for ManifestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.file.is_empty() {
            f.write_str(&self.message)?;
        } else {
            let place = crate::script::diag::location(&self.file, self.line, self.column);
            write!(f, "{place}: {}", self.message)?;
        }
        if let Some(h) = &self.hint {
            write!(f, "\n  hint: {h}")?;
        }
        Ok(())
    }
}

/// Every problem found in a suite, in the order found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SuiteError(pub Vec<ManifestError>);

impl fmt::Display for SuiteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\nerror: ")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for SuiteError {}

impl From<ManifestError> for SuiteError {
    fn from(e: ManifestError) -> Self {
        SuiteError(vec![e])
    }
}

/// A duration written with a unit (`"250ms"`, `"30s"`, `"2m"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dur(pub Duration);

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Dur, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Dur;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration with a unit, e.g. \"30s\"")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Dur, E> {
                parse_duration(s).map(Dur).map_err(E::custom)
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<Dur, E> {
                self.visit_str(&n.to_string())
            }
            fn visit_u64<E: de::Error>(self, n: u64) -> Result<Dur, E> {
                self.visit_str(&n.to_string())
            }
            fn visit_f64<E: de::Error>(self, n: f64) -> Result<Dur, E> {
                self.visit_str(&n.to_string())
            }
        }
        d.deserialize_any(V)
    }
}

/// A command line: one string, split like `--server` ([`split_command`]: whitespace
/// separates words, single and double quotes group them), or a list of arguments.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "RawCommandLine")]
pub enum CommandLine {
    Line(String),
    Args(Vec<String>),
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawCommandLine {
    Line(String),
    Args(Vec<String>),
}

/// A command line string that does not split into words (an unclosed quote).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct CommandLineError(&'static str);

impl TryFrom<RawCommandLine> for CommandLine {
    type Error = CommandLineError;
    fn try_from(raw: RawCommandLine) -> Result<CommandLine, CommandLineError> {
        match raw {
            RawCommandLine::Line(s) => split_command(&s).map(|_| CommandLine::Line(s)).map_err(CommandLineError),
            RawCommandLine::Args(a) => Ok(CommandLine::Args(a)),
        }
    }
}

impl CommandLine {
    pub fn args(&self) -> Vec<String> {
        match self {
            // Checked when parsed; an unparseable line is an empty command.
            CommandLine::Line(s) => split_command(s).unwrap_or_default(),
            CommandLine::Args(a) => a.clone(),
        }
    }
}

/// `suite.yaml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SuiteFile {
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    /// The system under test (default `builtin`); `--target` overrides.
    #[serde(default)]
    pub target: Option<String>,
    /// A server the suite starts before the first scenario and stops after the last.
    #[serde(default)]
    pub server: Option<ServerSpec>,
    /// With the built-in target: one server for every scenario instead of one each.
    #[serde(default)]
    pub shared_server: bool,
    /// Scripts may open `stdio:` targets other than the suite's own (each spawns a
    /// process), as `--allow-spawn` lets them.
    #[serde(default)]
    pub allow_spawn: bool,
    /// HTTP headers sent with every request of every scenario's sessions (HTTP, legacy SSE,
    /// WebSocket); `--header` adds to them and wins for the same name.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// The profile used without `--profile` (default `quick`).
    #[serde(default)]
    pub profile: Option<String>,
    /// Profiles beyond (or refining) the built-in `quick` and `full`.
    #[serde(default)]
    pub profiles: BTreeMap<String, ProfileSpec>,
    /// Per-scenario time limit unless the scenario or profile gives one (default 10m).
    #[serde(default)]
    pub timeout: Option<Dur>,
    /// Scenarios run at once (default 1); `--parallel` overrides.
    #[serde(default)]
    pub parallelism: Option<usize>,
    /// Connections the machine may hold at once, shared by running scenarios (default:
    /// the open-file limit).
    #[serde(default)]
    pub connections: Option<u64>,
    /// Parameters for every scenario whose script reads them.
    #[serde(default)]
    pub params: BTreeMap<String, yaml_serde::Value>,
    /// Scenario manifests, relative to the suite file.
    pub scenarios: Vec<String>,
}

/// A named set of parameter values and limits.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProfileSpec {
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub params: BTreeMap<String, yaml_serde::Value>,
    #[serde(default)]
    pub timeout: Option<Dur>,
    #[serde(default)]
    pub parallelism: Option<usize>,
    /// The connection budget under this profile (a profile whose load phases spread over
    /// worker processes holds more than one process's open-file limit).
    #[serde(default)]
    pub connections: Option<u64>,
}

/// A server process the suite manages.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSpec {
    pub command: CommandLine,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    #[serde(default)]
    pub ready: ReadySpec,
    #[serde(default)]
    pub restart: Restart,
}

/// When the managed server counts as ready.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReadySpec {
    /// A line of its stdout or stderr contains this text (default: a client connects to
    /// the target and `initialize` succeeds).
    #[serde(default)]
    pub log: Option<String>,
    /// Ready this long after the start (when neither connecting nor a log line tells).
    #[serde(default)]
    pub delay: Option<Dur>,
    /// Give up after this long (default 10s).
    #[serde(default)]
    pub timeout: Option<Dur>,
}

/// What happens when the managed server exits during the suite.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Restart {
    /// It stays down; later scenarios fail against it.
    #[default]
    Never,
    /// It is started again before the next scenario.
    OnExit,
}

/// `scripts/NAME.yaml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScenarioFile {
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    /// The script, relative to the manifest.
    pub script: String,
    #[serde(default)]
    pub depends_on: Vec<String>,
    #[serde(default)]
    pub timeout: Option<Dur>,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub resources: Resources,
    /// Options of this scenario's own built-in server.
    #[serde(default)]
    pub server: Option<BuiltinServer>,
    /// What the target must offer; a target without it skips the scenario with the reason.
    #[serde(default)]
    pub requires: Requires,
    /// Parameter values for every profile.
    #[serde(default)]
    pub params: BTreeMap<String, yaml_serde::Value>,
    /// Parameter values for one profile, overriding `params`. The keys `resources` and
    /// `timeout` in a profile are not parameters: they replace the scenario's own under that
    /// profile.
    #[serde(default)]
    pub profiles: BTreeMap<String, BTreeMap<String, yaml_serde::Value>>,
    /// Metrics the script exports, with the direction that is better.
    #[serde(default)]
    pub metrics: Vec<MetricSpec>,
}

/// What a scenario needs of its target. Checked before it starts (the target is asked once
/// per run: `initialize` and `tools/list`); a need not met skips the scenario with the reason.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Requires {
    /// Tools `tools/list` must list, by name.
    #[serde(default)]
    pub tools: Vec<String>,
    /// Keys of the server's `capabilities` in its `initialize` reply (`tools`, `resources`,
    /// `prompts`, `logging`, `completions`...).
    #[serde(default)]
    pub capabilities: Vec<String>,
    /// mcpscript can kill and restart the target: the built-in server, or a server it
    /// starts (`--server`, the suite's `server:`).
    #[serde(default)]
    pub managed: bool,
    /// The target's transport is one of these: `http`, `sse`, `ws`, `tcp`, `stdio`
    /// (the built-in target's own servers are `tcp`).
    #[serde(default)]
    pub transports: Vec<String>,
}

impl Requires {
    pub fn is_empty(&self) -> bool {
        self == &Requires::default()
    }

    /// Whether the target must be asked (tools or capabilities are named).
    pub fn asks_target(&self) -> bool {
        !self.tools.is_empty() || !self.capabilities.is_empty()
    }
}

/// What a scenario holds while it runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Resources {
    /// Connections it opens at most (counted against the suite's budget).
    #[serde(default = "one")]
    pub connections: u64,
    /// Runs alone: nothing else starts while it runs.
    #[serde(default)]
    pub exclusive: bool,
}

fn one() -> u64 {
    1
}

impl Default for Resources {
    fn default() -> Self {
        Resources { connections: 1, exclusive: false }
    }
}

/// Options of a scenario's own built-in server (as `mcpscript serve` takes them). The fault
/// modes (`leak` ... `jitter_fraction`, the `--fault-*` flags of `serve`) make it misbehave
/// on purpose, so a scenario can be shown to fail against a bad server.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BuiltinServer {
    /// Processes serving the port (SO_REUSEPORT): more than one runs the server as child
    /// processes the scenario may kill one at a time (`chaos::kill(1)`).
    #[serde(default)]
    pub workers: Option<u32>,
    #[serde(default)]
    pub max_inflight: Option<usize>,
    #[serde(default)]
    pub max_connections: Option<usize>,
    #[serde(default)]
    pub latency: Option<Dur>,
    #[serde(default)]
    pub error_rate: Option<f64>,
    /// Bytes every request except initialize retains for good, e.g. `64KB` (at most 16 MiB).
    #[serde(default)]
    pub leak: Option<crate::util::size::ByteSize>,
    /// Every JSON-RPC error is sent with code -32603 instead of the right one.
    #[serde(default)]
    pub wrong_error_codes: bool,
    /// Past `max_inflight` (default 4) every request is admitted and all slow down; none is shed.
    #[serde(default)]
    pub collapse: bool,
    /// Once killed, the server does not come back: a restart of it fails. Only a server the
    /// scenario may restart has an effect (one started for a script that uses `chaos::`).
    #[serde(default)]
    pub stay_down: bool,
    /// `jitter_fraction` of the replies are delayed by a random time up to this, e.g. `50ms`.
    #[serde(default)]
    pub jitter: Option<Dur>,
    /// The fraction (0 to 1) of replies `jitter` delays; default 0.1.
    #[serde(default)]
    pub jitter_fraction: Option<f64>,
}

/// A metric a scenario exports.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricSpec {
    pub name: String,
    pub better: crate::script::results::Better,
    #[serde(default)]
    pub unit: Option<String>,
}

/// Largest suite or manifest file read (a real one is a few KB).
pub const MAX_MANIFEST_BYTES: usize = 1 << 20;
/// Deepest nesting of flow collections (`[...]`, `{...}`) accepted.
pub const MAX_FLOW_DEPTH: usize = 64;

/// Parses `text` (the contents of `file`) as `T`, turning any error into a located one.
/// Oversized files and deeply nested flow collections are refused before the YAML parser
/// sees them, so a hostile file costs a linear scan, never the parser's worst case.
pub fn parse<T: de::DeserializeOwned>(file: &str, text: &str) -> Result<T, ManifestError> {
    if text.len() > MAX_MANIFEST_BYTES {
        return Err(ManifestError::new(
            file,
            format!(
                "is {} KB; a suite or manifest file holds at most {} KB",
                text.len() / 1024,
                MAX_MANIFEST_BYTES / 1024
            ),
        ));
    }
    if let Some(pos) = too_deep(text, MAX_FLOW_DEPTH) {
        return Err(
            ManifestError::new(file, format!("nests lists or maps more than {MAX_FLOW_DEPTH} deep")).at(Some(pos))
        );
    }
    yaml_serde::from_str(text).map_err(|e| yaml_error(file, &e))
}

/// Where (line, column, from 1) flow collections first nest deeper than `max`, outside
/// comments; None when they never do. Brackets in quoted strings count too: telling a
/// quoted scalar from plain text the way YAML does needs YAML's own context (`a-"b` is plain
/// text), and a guard that guessed wrong could be walked past; a string holding more than
/// `max` unclosed brackets is refused as well, which no real manifest has.
fn too_deep(text: &str, max: usize) -> Option<(usize, usize)> {
    let (mut depth, mut line, mut col) = (0usize, 1usize, 0usize);
    let mut comment = false;
    let mut prev = '\n';
    for c in text.chars() {
        col += 1;
        if c == '\n' {
            (line, col, comment) = (line + 1, 0, false);
        } else if !comment {
            match c {
                '#' if prev.is_whitespace() => comment = true,
                '[' | '{' => {
                    depth += 1;
                    if depth > max {
                        return Some((line, col));
                    }
                }
                ']' | '}' => depth = depth.saturating_sub(1),
                _ => {}
            }
        }
        prev = c;
    }
    None
}

/// Reads and parses a manifest file.
pub fn read<T: de::DeserializeOwned>(path: &Path, file: &str) -> Result<(T, String), ManifestError> {
    let text = std::fs::read_to_string(path).map_err(|e| ManifestError::new(file, format!("cannot read: {e}")))?;
    Ok((parse(file, &text)?, text))
}

fn yaml_error(file: &str, e: &yaml_serde::Error) -> ManifestError {
    let mut message = e.to_string();
    let loc = e.location();
    if let Some(l) = &loc {
        for suffix in [format!(" at line {} column {}", l.line(), l.column()), format!(" at position {}", l.index())] {
            if let Some(i) = message.find(&suffix) {
                message.replace_range(i..i + suffix.len(), "");
            }
        }
    }
    let hint = unknown_key_hint(&message);
    ManifestError {
        file: file.to_string(),
        line: loc.as_ref().map(|l| l.line()),
        column: loc.as_ref().map(|l| l.column()),
        message,
        hint,
    }
}

/// For serde's "unknown field `tmeout`, expected one of `name`, `timeout`": a suggestion.
fn unknown_key_hint(message: &str) -> Option<String> {
    let rest = &message[message.find("unknown field `")?..];
    let quoted: Vec<&str> = rest.split('`').skip(1).step_by(2).collect();
    let (unknown, known) = quoted.split_first()?;
    match crate::util::suggest(unknown, known.iter().copied()) {
        Some(s) => Some(format!("did you mean `{s}`?")),
        None => Some(format!("known keys: {}", known.join(", "))),
    }
}

/// Why a YAML value is not a parameter value.
#[derive(Debug, thiserror::Error)]
pub enum ValueError {
    #[error("a parameter needs a value (found null)")]
    Null,
    #[error("tagged values (!tag) are not parameters")]
    Tagged,
    #[error(transparent)]
    Json(#[from] serde_json::Error),
}

/// A YAML value as the text `--set` would give: scalars as written, lists and maps as JSON.
pub fn value_text(v: &yaml_serde::Value) -> Result<String, ValueError> {
    use yaml_serde::Value;
    match v {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        Value::Bool(b) => Ok(b.to_string()),
        Value::Null => Err(ValueError::Null),
        Value::Sequence(_) | Value::Mapping(_) => Ok(serde_json::to_string(v)?),
        Value::Tagged(_) => Err(ValueError::Tagged),
    }
}

/// Where `key:` first appears as a mapping key at or after line `from` (1-based line and
/// column), for errors found after parsing.
pub fn find_key(text: &str, key: &str, from: usize) -> Option<(usize, usize)> {
    for (i, line) in text.lines().enumerate().skip(from.saturating_sub(1)) {
        let trimmed = line.trim_start();
        let body = trimmed.strip_prefix("- ").unwrap_or(trimmed);
        let bare = body.trim_start_matches(['"', '\'']);
        if let Some(after) = bare.strip_prefix(key) {
            if after.trim_start_matches(['"', '\'']).starts_with(':') {
                return Some((i + 1, line.len() - bare.len() + 1));
            }
        }
    }
    None
}

/// Where `value` first appears as a whole word at or after line `from` (never, for an empty
/// `value`).
pub fn find_value(text: &str, value: &str, from: usize) -> Option<(usize, usize)> {
    if value.is_empty() {
        // An empty match inside a word would never advance the search.
        return None;
    }
    let word = |c: char| c.is_alphanumeric() || c == '_' || c == '-' || c == '.';
    for (i, line) in text.lines().enumerate().skip(from.saturating_sub(1)) {
        let mut start = 0;
        while let Some(off) = line[start..].find(value) {
            let at = start + off;
            let before = line[..at].chars().next_back();
            let after = line[at + value.len()..].chars().next();
            if !before.is_some_and(word) && !after.is_some_and(word) {
                return Some((i + 1, line[..at].chars().count() + 1));
            }
            start = at + value.len();
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yaml_bombs_are_refused_before_parsing() {
        // 400 KB of nested brackets took the YAML parser seconds; the scan refuses it at once.
        let bomb = format!("name: a\nscript: {}{}\n", "[".repeat(200_000), "]".repeat(200_000));
        let e = parse::<ScenarioFile>("a.yaml", &bomb).unwrap_err();
        assert_eq!((e.line, e.column), (Some(2), Some(9 + MAX_FLOW_DEPTH)), "{e}");
        assert!(e.message.contains("more than 64 deep"), "{e}");
        let big = format!("name: a\nscript: a.rhai\n# {}\n", "x".repeat(MAX_MANIFEST_BYTES));
        assert!(parse::<ScenarioFile>("a.yaml", &big).unwrap_err().message.contains("at most 1024 KB"));
        // Brackets in comments do not count; moderate nesting passes the scan.
        let commented = format!("name: a\nscript: a.rhai # {}\ntags: [[a]]\n", "{".repeat(100));
        assert!(too_deep(&commented, MAX_FLOW_DEPTH).is_none());
        assert!(too_deep("a: 'it''s [' \nb: [[[1]]]\n", 2).is_some());
        // A quote YAML reads as plain text (`a-"b`) hides nothing: found by fuzzing, this
        // took the parser 104 s at 400 KB when the scan skipped what followed the quote.
        let sneaky = format!("name: a-\"b\nscript: x\nparams:\n  x: {}\n", "[".repeat(100_000));
        let t = std::time::Instant::now();
        let e = parse::<ScenarioFile>("a.yaml", &sneaky).unwrap_err();
        assert!(e.message.contains("more than 64 deep"), "{e}");
        assert!(t.elapsed() < std::time::Duration::from_secs(1), "{:?}", t.elapsed());
    }

    #[test]
    fn unknown_key_names_place_and_suggests() {
        let text = "name: a\nscript: a.rhai\ntimout: 5s\n";
        let e = parse::<ScenarioFile>("a.yaml", text).unwrap_err();
        assert_eq!((e.line, e.column), (Some(3), Some(1)), "{e}");
        assert!(e.message.contains("unknown field `timout`"), "{e}");
        assert_eq!(e.hint.as_deref(), Some("did you mean `timeout`?"));
        assert!(e.to_string().starts_with("a.yaml:3:1: unknown field"), "{e}");
    }

    #[test]
    fn durations_need_units_and_name_their_place() {
        let e = parse::<ScenarioFile>("a.yaml", "name: a\nscript: a.rhai\ntimeout: 30\n").unwrap_err();
        assert_eq!(e.line, Some(3), "{e}");
        assert!(e.message.contains("needs a unit"), "{e}");
        let e = parse::<ScenarioFile>("a.yaml", "name: a\nscript: a.rhai\ntimeout: 3 parsecs\n").unwrap_err();
        assert!(e.message.contains("invalid duration"), "{e}");
        let s: ScenarioFile = parse("a.yaml", "name: a\nscript: a.rhai\ntimeout: 1.5s\n").unwrap();
        assert_eq!(s.timeout, Some(Dur(Duration::from_millis(1500))));
    }

    #[test]
    fn syntax_errors_have_a_place() {
        let e = parse::<SuiteFile>("s.yaml", "name: x\nscenarios: [a.yaml\n").unwrap_err();
        assert!(e.line.is_some() && e.column.is_some(), "{e}");
    }

    #[test]
    fn nested_unknown_keys_and_values() {
        let e = parse::<ScenarioFile>("a.yaml", "name: a\nscript: a.rhai\nresources:\n  exclusiv: true\n").unwrap_err();
        assert_eq!(e.line, Some(4), "{e}");
        assert_eq!(e.hint.as_deref(), Some("did you mean `exclusive`?"));
        let s: ScenarioFile =
            parse("a.yaml", "name: a\nscript: a.rhai\nparams: {n: 3, d: 5s, xs: [1, 2], b: true}\n").unwrap();
        let texts: Vec<String> = s.params.values().map(|v| value_text(v).unwrap()).collect();
        assert_eq!(texts, vec!["true", "5s", "3", "[1,2]"]);
    }

    #[test]
    fn finds_keys_and_values() {
        let text = "name: a\ndepends_on:\n  - smoke\n  - proto\n";
        assert_eq!(find_key(text, "depends_on", 1), Some((2, 1)));
        assert_eq!(find_value(text, "proto", 2), Some((4, 5)));
        assert_eq!(find_value(text, "smok", 1), None);
        // Found by fuzzing: an empty value (`transports: [""]`, `depends_on: [""]`) looped forever.
        assert_eq!(find_value(text, "", 1), None);
    }
}
