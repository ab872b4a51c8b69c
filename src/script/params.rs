//! Script parameters: `--set KEY=VALUE` on the command line, `param(name, default)` in the
//! script. Values arrive as text and take the type of the default: an int default wants an
//! integer, a float a number, a bool `true`/`false`, a duration string (`"5s"`) a duration,
//! an array or map default JSON; any other string default takes the text as is. Without a
//! default the value's type is inferred (int, float, bool, else string).

use rhai::{Dynamic, ImmutableString};
use std::collections::BTreeMap;

/// The `--set` values of a run, by name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Params {
    values: BTreeMap<String, String>,
}

impl Params {
    /// Parses `KEY=VALUE` items; a malformed item or a key given twice is an error.
    pub fn parse<S: AsRef<str>>(items: &[S]) -> Result<Params, String> {
        let mut values = BTreeMap::new();
        for item in items {
            let item = item.as_ref();
            let (k, v) = item
                .split_once('=')
                .ok_or_else(|| format!("--set {item}: expected KEY=VALUE, e.g. --set connections=100"))?;
            let k = k.trim();
            if !is_param_name(k) {
                return Err(format!(
                    "--set {item}: '{k}' is not a parameter name (letters, digits and _, starting with a letter or _)"
                ));
            }
            if values.insert(k.to_string(), v.to_string()).is_some() {
                return Err(format!("--set {k} is given more than once"));
            }
        }
        Ok(Params { values })
    }

    pub fn from_map(values: BTreeMap<String, String>) -> Params {
        Params { values }
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.values.keys().map(String::as_str)
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }
}

pub fn is_param_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The value of `--set name=raw` in the type of `default`, or a message naming the
/// parameter and the expected type.
pub fn convert(name: &str, raw: &str, default: &Dynamic) -> Result<Dynamic, String> {
    let bad = |expected: &str| {
        format!("--set {name}={raw}: parameter '{name}' expects {expected} (its default is {})", show_default(default))
    };
    let t = raw.trim();
    if default.is_int() {
        return parse_int(t).map(Dynamic::from_int).ok_or_else(|| bad("an integer"));
    }
    if default.is_float() {
        return parse_float(t).map(Dynamic::from_float).ok_or_else(|| bad("a number"));
    }
    if default.is_bool() {
        return parse_bool(t).map(Dynamic::from_bool).ok_or_else(|| bad("true or false"));
    }
    if default.is_string() {
        let d = default.clone().into_string().unwrap_or_default();
        if crate::util::duration::parse_duration(&d).is_ok() {
            return match crate::util::duration::parse_duration(t) {
                Ok(_) => Ok(Dynamic::from(ImmutableString::from(t))),
                Err(e) => Err(bad(&format!("a duration such as 250ms or 5s ({})", e.reason))),
            };
        }
        return Ok(Dynamic::from(ImmutableString::from(raw)));
    }
    if default.is_array() || default.is_map() {
        let want = if default.is_array() { "a JSON array, e.g. [1, 2, 3]" } else { "a JSON object, e.g. {\"a\": 1}" };
        let v: serde_json::Value = serde_json::from_str(t).map_err(|_| bad(want))?;
        if v.is_array() != default.is_array() || v.is_object() != default.is_map() {
            return Err(bad(want));
        }
        return Ok(super::value::to_dynamic(&v));
    }
    Ok(infer(raw))
}

/// A value without a default to type it: int, float, bool, else the text.
pub fn infer(raw: &str) -> Dynamic {
    let t = raw.trim();
    if let Some(i) = parse_int(t) {
        Dynamic::from_int(i)
    } else if let Some(f) = parse_float(t) {
        Dynamic::from_float(f)
    } else if let Some(b) = parse_bool(t) {
        Dynamic::from_bool(b)
    } else {
        Dynamic::from(ImmutableString::from(raw))
    }
}

fn parse_int(t: &str) -> Option<i64> {
    if t.is_empty() || t.starts_with('_') || t.ends_with('_') {
        return None;
    }
    t.replace('_', "").parse().ok()
}

fn parse_float(t: &str) -> Option<f64> {
    let lower = t.to_ascii_lowercase();
    if lower.contains("inf") || lower.contains("nan") {
        return None;
    }
    t.replace('_', "").parse::<f64>().ok().filter(|f| f.is_finite())
}

fn parse_bool(t: &str) -> Option<bool> {
    match t {
        "true" => Some(true),
        "false" => Some(false),
        _ => None,
    }
}

fn show_default(d: &Dynamic) -> String {
    if d.is_string() {
        format!("\"{d}\"")
    } else {
        d.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_set_items() {
        let p = Params::parse(&["a=1", "b=x=y", "c="]).unwrap();
        assert_eq!((p.get("a"), p.get("b"), p.get("c")), (Some("1"), Some("x=y"), Some("")));
        assert!(Params::parse(&["a"]).unwrap_err().contains("KEY=VALUE"));
        assert!(Params::parse(&["1a=2"]).unwrap_err().contains("not a parameter name"));
        assert!(Params::parse(&["a=1", "a=2"]).unwrap_err().contains("more than once"));
    }

    #[test]
    fn converts_to_the_default_type() {
        assert_eq!(convert("n", "10_000", &Dynamic::from_int(1)).unwrap().as_int().unwrap(), 10_000);
        assert_eq!(convert("f", "3", &Dynamic::from_float(1.0)).unwrap().as_float().unwrap(), 3.0);
        assert!(convert("b", "true", &Dynamic::from_bool(false)).unwrap().as_bool().unwrap());
        assert_eq!(convert("d", "250ms", &Dynamic::from("5s")).unwrap().into_string().unwrap(), "250ms");
        assert_eq!(convert("s", "hello", &Dynamic::from("x")).unwrap().into_string().unwrap(), "hello");
        assert_eq!(convert("a", "[1,2]", &Dynamic::from_array(vec![])).unwrap().into_array().unwrap().len(), 2);
    }

    #[test]
    fn names_the_parameter_and_expected_type() {
        let e = convert("conns", "many", &Dynamic::from_int(100)).unwrap_err();
        assert_eq!(e, "--set conns=many: parameter 'conns' expects an integer (its default is 100)");
        let e = convert("wait", "5", &Dynamic::from("5s")).unwrap_err();
        assert!(e.contains("expects a duration such as 250ms") && e.contains("missing unit"), "{e}");
        assert!(convert("b", "yes", &Dynamic::from_bool(true)).unwrap_err().contains("true or false"));
        assert!(convert("x", "1.5", &Dynamic::from_int(1)).unwrap_err().contains("an integer"));
    }

    #[test]
    fn infers_without_default() {
        assert!(infer("12").is_int());
        assert!(infer("1.5").is_float());
        assert!(infer("false").is_bool());
        assert!(infer("5s").is_string());
        assert!(infer("nan").is_string());
    }
}
