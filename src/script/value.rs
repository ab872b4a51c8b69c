//! Conversions between JSON (what the client speaks) and Rhai values (what scripts hold).
//! JSON objects become Rhai maps, arrays arrays, integers `int` when they fit in an i64 and
//! `float` otherwise. The way back refuses what JSON cannot carry (function pointers,
//! timestamps, NaN) with a message naming the value's type.

use rhai::{Array, Dynamic, ImmutableString, Map, FLOAT, INT};
use serde_json::{Map as JsonMap, Number, Value};

/// Deepest nesting accepted when converting a script value to JSON.
const MAX_DEPTH: usize = 128;

/// A JSON value as a Rhai value.
pub fn to_dynamic(v: &Value) -> Dynamic {
    match v {
        Value::Null => Dynamic::UNIT,
        Value::Bool(b) => Dynamic::from_bool(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => Dynamic::from_int(i as INT),
            None => Dynamic::from_float(n.as_f64().unwrap_or(f64::NAN) as FLOAT),
        },
        Value::String(s) => Dynamic::from(ImmutableString::from(s.as_str())),
        Value::Array(items) => Dynamic::from_array(items.iter().map(to_dynamic).collect()),
        Value::Object(obj) => Dynamic::from_map(obj.iter().map(|(k, v)| (k.as_str().into(), to_dynamic(v))).collect()),
    }
}

/// A Rhai value as JSON, or why it cannot be one.
pub fn to_json(d: &Dynamic) -> Result<Value, String> {
    to_json_at(d, 0)
}

fn to_json_at(d: &Dynamic, depth: usize) -> Result<Value, String> {
    if depth > MAX_DEPTH {
        return Err(format!("the value is nested more than {MAX_DEPTH} levels deep"));
    }
    if d.is_unit() {
        return Ok(Value::Null);
    }
    if let Ok(b) = d.as_bool() {
        return Ok(Value::Bool(b));
    }
    if let Ok(i) = d.as_int() {
        return Ok(Value::Number(i.into()));
    }
    if let Ok(f) = d.as_float() {
        return Number::from_f64(f).map(Value::Number).ok_or_else(|| format!("{f} cannot be sent as JSON"));
    }
    if let Ok(c) = d.as_char() {
        return Ok(Value::String(c.to_string()));
    }
    if d.is_string() {
        return Ok(Value::String(d.clone().into_string().unwrap_or_default()));
    }
    if d.is_array() {
        let items = d.read_lock::<Array>().ok_or("the array is locked")?;
        return items.iter().map(|x| to_json_at(x, depth + 1)).collect::<Result<Vec<_>, _>>().map(Value::Array);
    }
    if d.is_map() {
        let map = d.read_lock::<Map>().ok_or("the map is locked")?;
        let mut out = JsonMap::with_capacity(map.len());
        for (k, v) in map.iter() {
            out.insert(k.to_string(), to_json_at(v, depth + 1)?);
        }
        return Ok(Value::Object(out));
    }
    if d.is_blob() {
        let blob = d.read_lock::<rhai::Blob>().ok_or("the blob is locked")?;
        return Ok(Value::Array(blob.iter().map(|b| Value::Number((*b).into())).collect()));
    }
    Err(format!("a value of type {} cannot be converted to JSON", d.type_name()))
}

/// A number from a script (int or float) as f64.
pub fn as_number(d: &Dynamic) -> Option<f64> {
    d.as_float().ok().or_else(|| d.as_int().ok().map(|i| i as f64))
}

/// Rhai's name for a value's type, for error messages (`int`, `string`, `map`...).
pub fn type_name(d: &Dynamic) -> String {
    let t = d.type_name();
    match t {
        "i64" => "int".into(),
        "f64" => "float".into(),
        "()" => "() (nothing)".into(),
        other => other.rsplit("::").next().unwrap_or(other).into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn round_trips_json() {
        let v = json!({"a": 1, "b": [true, null, 2.5, "x"], "c": {"d": -7}, "big": 18446744073709551615u64});
        let back = to_json(&to_dynamic(&v)).unwrap();
        assert_eq!(back["a"], 1);
        assert_eq!(back["b"], json!([true, null, 2.5, "x"]));
        assert_eq!(back["c"]["d"], -7);
        assert!(back["big"].is_f64());
    }

    #[test]
    fn sees_through_shared_values() {
        // Variables captured by closures are shared.
        let map: Dynamic =
            Dynamic::from_map([("n".into(), Dynamic::from_int(5).into_shared())].into_iter().collect()).into_shared();
        assert_eq!(to_json(&map).unwrap(), json!({"n": 5}));
        assert_eq!(to_json(&Dynamic::from("s").into_shared()).unwrap(), json!("s"));
    }

    #[test]
    fn refuses_what_json_cannot_carry() {
        assert!(to_json(&Dynamic::from_float(f64::NAN)).unwrap_err().contains("cannot be sent"));
        let f = Dynamic::from(rhai::FnPtr::new("foo").unwrap());
        assert!(to_json(&f).unwrap_err().contains("cannot be converted"));
    }
}
