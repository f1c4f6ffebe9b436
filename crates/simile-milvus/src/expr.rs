//! Filter expressions built by hand (escaped), in batches.
//!
//! The SDK's `.ids(..)` sends filter templates that only Milvus ≥ 2.5 parses, so every id filter
//! is a plain `field in ["a", "b"]` expression with each id written as an escaped string literal.

/// A Milvus string literal for `s`: double-quoted, with `\`, `"` and control characters escaped.
pub(crate) fn string_literal(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// `field in ["k1", "k2", ...]`.
pub(crate) fn in_filter(field: &str, keys: &[String]) -> String {
    let mut out =
        String::with_capacity(keys.iter().map(|k| k.len() + 4).sum::<usize>() + field.len() + 8);
    out.push_str(field);
    out.push_str(" in [");
    for (i, k) in keys.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&string_literal(k));
    }
    out.push(']');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_quotes_and_backslashes() {
        assert_eq!(string_literal(r#"a"b\c"#), r#""a\"b\\c""#);
        assert_eq!(string_literal("x\ny"), r#""x\ny""#);
        assert_eq!(string_literal("\u{1}"), r#""\u0001""#);
    }

    #[test]
    fn builds_in_filters() {
        let keys = vec!["a".to_string(), "b\"]".to_string()];
        assert_eq!(in_filter("pk", &keys), r#"pk in ["a","b\"]"]"#);
        assert_eq!(in_filter("sample_id", &[]), "sample_id in []");
    }
}
