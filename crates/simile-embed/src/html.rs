//! Python's `html.unescape` and ftfy's `unescape_html`, character for character, on top of the
//! HTML5 named-entity table of `html-escape`.

/// Entity names that HTML allows without a trailing semicolon (Python's `html5` keys without ';').
const LEGACY: &[&str] = &[
    "AElig", "AMP", "Aacute", "Acirc", "Agrave", "Aring", "Atilde", "Auml", "COPY", "Ccedil",
    "ETH", "Eacute", "Ecirc", "Egrave", "Euml", "GT", "Iacute", "Icirc", "Igrave", "Iuml", "LT",
    "Ntilde", "Oacute", "Ocirc", "Ograve", "Oslash", "Otilde", "Ouml", "QUOT", "REG", "THORN",
    "Uacute", "Ucirc", "Ugrave", "Uuml", "Yacute", "aacute", "acirc", "acute", "aelig", "agrave",
    "amp", "aring", "atilde", "auml", "brvbar", "ccedil", "cedil", "cent", "copy", "curren", "deg",
    "divide", "eacute", "ecirc", "egrave", "eth", "euml", "frac12", "frac14", "frac34", "gt",
    "iacute", "icirc", "iexcl", "igrave", "iquest", "iuml", "laquo", "lt", "macr", "micro",
    "middot", "nbsp", "not", "ntilde", "oacute", "ocirc", "ograve", "ordf", "ordm", "oslash",
    "otilde", "ouml", "para", "plusmn", "pound", "quot", "raquo", "reg", "sect", "shy", "sup1",
    "sup2", "sup3", "szlig", "thorn", "times", "uacute", "ucirc", "ugrave", "uml", "uuml",
    "yacute", "yen", "yuml",
];

/// The value of a named entity written with its semicolon (`"amp;"`), if HTML5 defines it.
fn named(name_with_semicolon: &str) -> Option<String> {
    let entity = format!("&{name_with_semicolon}");
    let decoded = html_escape::decode_html_entities(&entity);
    (decoded != entity).then(|| decoded.into_owned())
}

/// Python's `html._replace_charref` for a numeric reference.
fn numeric(num: Option<u32>) -> String {
    let Some(num) = num else {
        return '\u{fffd}'.to_string();
    };
    const CP1252: [char; 32] = [
        '\u{20ac}', '\u{81}', '\u{201a}', '\u{192}', '\u{201e}', '\u{2026}', '\u{2020}',
        '\u{2021}', '\u{2c6}', '\u{2030}', '\u{160}', '\u{2039}', '\u{152}', '\u{8d}', '\u{17d}',
        '\u{8f}', '\u{90}', '\u{2018}', '\u{2019}', '\u{201c}', '\u{201d}', '\u{2022}', '\u{2013}',
        '\u{2014}', '\u{2dc}', '\u{2122}', '\u{161}', '\u{203a}', '\u{153}', '\u{9d}', '\u{17e}',
        '\u{178}',
    ];
    match num {
        0 => return '\u{fffd}'.to_string(),
        0x0d => return '\r'.to_string(),
        0x80..=0x9f => return CP1252[(num - 0x80) as usize].to_string(),
        _ => {}
    }
    if (0xd800..=0xdfff).contains(&num) || num > 0x10ffff {
        return '\u{fffd}'.to_string();
    }
    let invalid = matches!(num, 0x1..=0x8 | 0xb | 0xe..=0x1f | 0x7f..=0x9f | 0xfdd0..=0xfdef)
        || (num & 0xfffe) == 0xfffe;
    if invalid {
        return String::new();
    }
    char::from_u32(num).map_or_else(String::new, |c| c.to_string())
}

fn parse_num(digits: &str, radix: u32) -> Option<u32> {
    u32::from_str_radix(digits, radix).ok()
}

/// Python's `html.unescape(s)`.
pub fn unescape(s: &str) -> String {
    if !s.contains('&') {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(pos) = rest.find('&') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        let (replacement, consumed) = charref(after);
        match replacement {
            Some(r) => {
                out.push_str(&r);
                rest = &after[consumed..];
            }
            None => {
                out.push('&');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// Matches `#[0-9]+;?|#[xX][0-9a-fA-F]+;?|[^\t\n\f <&#;]{1,32};?` at the start of `t` and returns
/// the replacement and the bytes consumed.
fn charref(t: &str) -> (Option<String>, usize) {
    let b = t.as_bytes();
    if b.first() == Some(&b'#') {
        let (radix, start) = if matches!(b.get(1), Some(b'x' | b'X')) {
            (16, 2)
        } else {
            (10, 1)
        };
        let digits = t[start..]
            .bytes()
            .take_while(|c| {
                if radix == 16 {
                    c.is_ascii_hexdigit()
                } else {
                    c.is_ascii_digit()
                }
            })
            .count();
        if digits == 0 {
            return (None, 0);
        }
        let mut end = start + digits;
        if b.get(end) == Some(&b';') {
            end += 1;
        }
        return (
            Some(numeric(parse_num(&t[start..start + digits], radix))),
            end,
        );
    }
    let mut name_end = 0;
    for (count, (i, c)) in t.char_indices().enumerate() {
        if count == 32 || matches!(c, '\t' | '\n' | '\u{c}' | ' ' | '<' | '&' | '#' | ';') {
            break;
        }
        name_end = i + c.len_utf8();
    }
    if name_end == 0 {
        return (None, 0);
    }
    let semicolon = t[name_end..].starts_with(';');
    let end = name_end + usize::from(semicolon);
    let s = &t[..end];
    if semicolon {
        if let Some(v) = named(s) {
            return (Some(v), end);
        }
    } else if LEGACY.contains(&s) {
        return (named(&format!("{s};")), end);
    }
    // The longest legacy prefix, as the HTML standard says.
    let bounds: Vec<usize> = s.char_indices().map(|(i, _)| i).skip(2).collect();
    for &x in bounds.iter().rev() {
        let prefix = &s[..x];
        if LEGACY.contains(&prefix) {
            let v = named(&format!("{prefix};")).unwrap_or_default();
            return (Some(format!("{v}{}", &s[x..])), end);
        }
    }
    (Some(format!("&{s}")), end)
}

/// ftfy's `unescape_html`: only complete `&...;` references (1-24 alphanumerics), named ones
/// also when upper-cased (`&EACUTE;` -> `É`).
pub fn ftfy_unescape(s: &str) -> String {
    if !s.contains('&') {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(pos) = rest.find('&') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        let hash = after.starts_with('#');
        let body_start = usize::from(hash);
        let n = after[body_start..]
            .bytes()
            .take_while(u8::is_ascii_alphanumeric)
            .take(25)
            .count();
        let end = body_start + n;
        if n == 0 || n > 24 || !after[end..].starts_with(';') {
            out.push('&');
            rest = after;
            continue;
        }
        let entity = &after[..=end]; // without '&', with ';'
        let replacement = if hash {
            let u = unescape(&format!("&{entity}"));
            (!u.contains(';')).then_some(u)
        } else if let Some(v) = named(entity) {
            Some(v)
        } else {
            let lower = entity.to_ascii_lowercase();
            if entity == entity.to_ascii_uppercase() && lower != entity {
                named(&lower).map(|v| v.to_uppercase())
            } else {
                None
            }
        };
        match replacement {
            Some(r) => out.push_str(&r),
            None => {
                out.push('&');
                out.push_str(entity);
            }
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_python_html_unescape() {
        // (input, Python 3.11 html.unescape output)
        let cases = [
            ("&amp", "&"),
            ("&ampx", "&x"),
            ("&lt;b&gt;", "<b>"),
            ("&#39;", "'"),
            ("&#x27;", "'"),
            ("&#39", "'"),
            ("&nbsp;x", "\u{a0}x"),
            ("&eacute;", "é"),
            ("&Eacute", "É"),
            ("&notit;", "¬it;"),
            ("&copy2026", "©2026"),
            ("&#128;", "€"),
            ("&#0;", "\u{fffd}"),
            ("&unknown;", "&unknown;"),
            ("AT&T", "AT&T"),
            ("&#x1F600;", "😀"),
            ("fish &amp;amp; chips", "fish &amp; chips"),
            ("& alone", "& alone"),
            ("&#;", "&#;"),
            ("&#1;x", "x"),
            ("&#99999999999;", "\u{fffd}"),
        ];
        for (input, want) in cases {
            assert_eq!(unescape(input), want, "{input:?}");
        }
    }

    #[test]
    fn like_ftfy_unescape_html() {
        assert_eq!(ftfy_unescape("&amp;amp; &amp x"), "&amp; &amp x");
        assert_eq!(ftfy_unescape("&EACUTE; &Eacute; &eacute;"), "É É é");
        assert_eq!(ftfy_unescape("&#233; &#xE9; &#;"), "é é &#;");
        assert_eq!(ftfy_unescape("&bogus; &"), "&bogus; &");
    }
}
