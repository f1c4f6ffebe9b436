//! MongoDB extended JSON as `bson.json_util.dumps` writes it: reading files that hold Python's
//! non-finite numbers, flattening `$oid`/`$date`/`$number*` values, writing ObjectIds back.
use std::borrow::Cow;
use std::path::Path;

use serde_json::{json, Map, Value};
use simile_dataset::is_object_id;

use crate::media::read_to_string;
use crate::{IoError, Result};

/// Reads a JSON file as Python writes it: a leading UTF-8 byte-order mark is skipped and
/// non-finite numbers are read as `null` (see [`sanitize_non_finite`]).
pub(super) fn parse_json(path: &Path) -> Result<Value> {
    let text = read_to_string(path)?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
    let text = sanitize_non_finite(text);
    serde_json::from_str(&text).map_err(|source| IoError::Json {
        path: path.to_path_buf(),
        source,
    })
}

/// Python's `json.dumps` writes `NaN`, `Infinity` and `-Infinity`; JSON has no such tokens.
/// Outside strings they become `null`.
pub(crate) fn sanitize_non_finite(text: &str) -> Cow<'_, str> {
    if !text.contains("NaN") && !text.contains("Infinity") {
        return Cow::Borrowed(text);
    }
    let b = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut in_str = false;
    let mut i = 0;
    let mut last = 0;
    while i < b.len() {
        let c = b[i];
        if in_str {
            if c == b'\\' {
                i += 2;
                continue;
            }
            if c == b'"' {
                in_str = false;
            }
            i += 1;
            continue;
        }
        if c == b'"' {
            in_str = true;
            i += 1;
            continue;
        }
        // Compared as bytes: `i` may sit inside a multi-byte character (a byte-order mark,
        // say), where slicing `text` would panic. A match starts with an ASCII byte, so `i`
        // is then a character boundary and so is `last`.
        let token = ["-Infinity", "Infinity", "NaN"]
            .into_iter()
            .find(|t| b[i..].starts_with(t.as_bytes()));
        if let Some(t) = token {
            out.push_str(&text[last..i]);
            out.push_str("null");
            i += t.len();
            last = i;
            continue;
        }
        i += 1;
    }
    out.push_str(&text[last..]);
    Cow::Owned(out)
}

/// Turns MongoDB extended JSON into plain JSON: `$oid` → hex string, `$date` → its ISO string
/// or milliseconds, `$numberLong`/`$numberInt`/`$numberDouble` → numbers. Binary values have
/// no JSON form and give `None`.
pub(crate) fn normalize(v: &Value) -> Option<Value> {
    match v {
        Value::Object(m) => {
            if m.len() == 1 || m.contains_key("$binary") {
                if let Some(x) = m.get("$oid").and_then(Value::as_str) {
                    return Some(Value::String(x.to_string()));
                }
                if let Some(d) = m.get("$date") {
                    return Some(match d {
                        Value::Object(inner) => inner
                            .get("$numberLong")
                            .and_then(Value::as_str)
                            .and_then(|s| s.parse::<i64>().ok())
                            .map(Value::from)
                            .unwrap_or(Value::Null),
                        other => other.clone(),
                    });
                }
                for key in ["$numberLong", "$numberInt"] {
                    if let Some(s) = m.get(key).and_then(Value::as_str) {
                        return Some(s.parse::<i64>().map(Value::from).unwrap_or(Value::Null));
                    }
                }
                if let Some(s) = m.get("$numberDouble").and_then(Value::as_str) {
                    return Some(
                        s.parse::<f64>()
                            .ok()
                            .filter(|f| f.is_finite())
                            .map(Value::from)
                            .unwrap_or(Value::Null),
                    );
                }
                if let Some(s) = m.get("$numberDecimal").and_then(Value::as_str) {
                    return Some(Value::String(s.to_string()));
                }
                if let Some(s) = m.get("$uuid").and_then(Value::as_str) {
                    return Some(Value::String(s.to_string()));
                }
                if m.contains_key("$binary") {
                    return None;
                }
            }
            let mut out = Map::new();
            for (k, x) in m {
                if let Some(n) = normalize(x) {
                    out.insert(k.clone(), n);
                }
            }
            Some(Value::Object(out))
        }
        Value::Array(a) => Some(Value::Array(a.iter().filter_map(normalize).collect())),
        other => Some(other.clone()),
    }
}

/// The lower-case hex of an ObjectId written as a hex string or as `{"$oid": ..}`.
pub(super) fn oid_of(v: Option<&Value>) -> Option<String> {
    let s = match v? {
        Value::String(s) => s.clone(),
        other => normalize(other)?.as_str()?.to_string(),
    };
    is_object_id(&s).then(|| s.to_ascii_lowercase())
}

/// `{"$oid": id}`, how MongoDB extended JSON writes an ObjectId.
pub(super) fn oid(id: &str) -> Value {
    json!({ "$oid": id })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_finite_tokens_become_null_outside_strings() {
        let s = r#"{"a": NaN, "b": "NaN and Infinity", "c": [-Infinity, Infinity], "d": "x\"NaN"}"#;
        let v: Value = serde_json::from_str(&sanitize_non_finite(s)).unwrap();
        assert_eq!(v["a"], Value::Null);
        assert_eq!(v["b"], json!("NaN and Infinity"));
        assert_eq!(v["c"], json!([null, null]));
        assert_eq!(v["d"], json!("x\"NaN"));
    }

    /// A byte-order mark (or any non-ASCII text outside strings) before a non-finite token
    /// used to slice the text inside a UTF-8 character and panic.
    #[test]
    fn non_finite_tokens_after_non_ascii_text_do_not_panic() {
        let s = "\u{feff}{\"a\": NaN, \"b\": \"\u{e9}\u{20ac}\", \"c\": Infinity}";
        assert_eq!(
            sanitize_non_finite(s),
            "\u{feff}{\"a\": null, \"b\": \"\u{e9}\u{20ac}\", \"c\": null}"
        );
        assert_eq!(sanitize_non_finite("\u{e9}NaN\u{e9}"), "\u{e9}null\u{e9}");
    }

    #[test]
    fn extended_json_is_flattened() {
        let v = json!({
            "a": {"$oid": "0123456789abcdef01234567"},
            "b": {"$date": "2024-01-01T00:00:00Z"},
            "c": {"$numberLong": "12"},
            "d": {"$binary": {"base64": "AA==", "subType": "00"}},
            "e": [{"$oid": "0123456789abcdef01234567"}],
        });
        let n = normalize(&v).unwrap();
        assert_eq!(n["a"], json!("0123456789abcdef01234567"));
        assert_eq!(n["b"], json!("2024-01-01T00:00:00Z"));
        assert_eq!(n["c"], json!(12));
        assert!(n.get("d").is_none());
        assert_eq!(n["e"], json!(["0123456789abcdef01234567"]));
    }
}
