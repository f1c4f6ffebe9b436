//! CLIP BPE tokenizer with open_clip's text cleaning, producing exactly `open_clip.tokenize` ids.
//!
//! open_clip cleans each prompt with `ftfy.fix_text`, `html.unescape` twice, `strip`, a whitespace
//! collapse and `lower()` before BPE. The BPE itself (OpenAI's `bpe_simple_vocab_16e6`) comes from
//! `instant-clip-tokenizer`; this module reproduces the cleaning: the parts of ftfy that change
//! ordinary text (HTML entities, terminal escapes, Latin ligatures, full/half-width forms, curly
//! quotes, control characters, NFC). ftfy's mojibake repair (`fix_encoding`) is not reproduced:
//! text that is already mis-decoded UTF-8 tokenizes as it is.
use std::borrow::Cow;

use instant_clip_tokenizer::{Token, Tokenizer};
use unicode_normalization::UnicodeNormalization;

/// Context length of every CLIP text tower.
pub const CONTEXT_LENGTH: usize = 77;
/// `<start_of_text>`.
pub const SOT: u16 = 49406;
/// `<end_of_text>`.
pub const EOT: u16 = 49407;

/// The CLIP tokenizer. Cheap to share (`&self` methods, `Send + Sync`).
pub struct ClipTokenizer {
    inner: Tokenizer,
}

impl std::fmt::Debug for ClipTokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClipTokenizer")
            .field("context_length", &CONTEXT_LENGTH)
            .finish()
    }
}

impl Default for ClipTokenizer {
    fn default() -> Self {
        Self::new()
    }
}

impl ClipTokenizer {
    /// The tokenizer with OpenAI's bundled vocabulary (49,408 tokens).
    pub fn new() -> Self {
        ClipTokenizer {
            inner: Tokenizer::new(),
        }
    }

    /// Token ids of one prompt, exactly as `open_clip.tokenize([text])[0]`: SOT, BPE of the
    /// cleaned text, EOT, zero padding to 77; over-long prompts keep 76 tokens then EOT.
    pub fn tokenize(&self, text: &str) -> [i64; CONTEXT_LENGTH] {
        let cleaned = clean(text);
        let mut tokens: Vec<Token> = Vec::with_capacity(CONTEXT_LENGTH + 8);
        tokens.push(self.inner.start_of_text());
        self.inner.encode(&cleaned, &mut tokens);
        tokens.push(self.inner.end_of_text());
        let mut out = [0i64; CONTEXT_LENGTH];
        let n = tokens.len().min(CONTEXT_LENGTH);
        for (slot, t) in out.iter_mut().zip(&tokens[..n]) {
            *slot = i64::from(t.to_u16());
        }
        if tokens.len() > CONTEXT_LENGTH {
            out[CONTEXT_LENGTH - 1] = i64::from(EOT);
        }
        out
    }

    /// [`ClipTokenizer::tokenize`] for several prompts, as a row-major `[n, 77]` buffer.
    pub fn tokenize_batch<S: AsRef<str>>(&self, texts: &[S]) -> Vec<i64> {
        let mut out = Vec::with_capacity(texts.len() * CONTEXT_LENGTH);
        for t in texts {
            out.extend_from_slice(&self.tokenize(t.as_ref()));
        }
        out
    }
}

/// open_clip's `_clean_lower` minus the final lower-casing (the BPE encoder lower-cases):
/// `whitespace_clean(basic_clean(text))`.
pub fn clean(text: &str) -> String {
    let fixed = fix_text(text);
    let once = crate::html::unescape(&fixed);
    let twice = crate::html::unescape(&once);
    let mut out = String::with_capacity(twice.len());
    for word in twice.split(char::is_whitespace).filter(|w| !w.is_empty()) {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(word);
    }
    out
}

/// The subset of `ftfy.fix_text` (default config) that matters for prompts.
fn fix_text(text: &str) -> String {
    // ftfy unescapes HTML entities itself unless the text looks like HTML (contains '<').
    let text: Cow<'_, str> = if text.contains('<') {
        Cow::Borrowed(text)
    } else {
        Cow::Owned(crate::html::ftfy_unescape(text))
    };
    let text = remove_terminal_escapes(&text);
    let mut out = String::with_capacity(text.len());
    for ch in text.chars() {
        match ch {
            // uncurl_quotes
            '\u{02bc}' | '\u{2018}'..='\u{201b}' => out.push('\''),
            '\u{201c}'..='\u{201f}' => out.push('"'),
            // fix_latin_ligatures
            '\u{0132}' => out.push_str("IJ"),
            '\u{0133}' => out.push_str("ij"),
            '\u{0149}' => out.push_str("\u{02bc}n"),
            '\u{01c4}'..='\u{01cc}' | '\u{01f1}'..='\u{01f3}' | '\u{fb00}'..='\u{fb06}' => {
                out.extend(ch.nfkc())
            }
            // fix_character_width: full-width forms and the ideographic space
            '\u{3000}' => out.push(' '),
            '\u{ff01}'..='\u{ffee}' => out.extend(ch.nfkc()),
            // fix_line_breaks
            '\r' | '\u{2028}' | '\u{2029}' | '\u{0085}' => out.push('\n'),
            // remove_control_chars
            '\u{0000}'..='\u{0008}'
            | '\u{000b}'
            | '\u{000e}'..='\u{001f}'
            | '\u{007f}'
            | '\u{206a}'..='\u{206f}'
            | '\u{feff}'
            | '\u{fff9}'..='\u{fffc}'
            | '\u{1d173}'..='\u{1d17a}'
            | '\u{e0000}'..='\u{e007f}' => {}
            _ => out.push(ch),
        }
    }
    out.nfc().collect()
}

/// Removes ANSI terminal escapes (`ESC [ ... m`-style sequences), like ftfy.
fn remove_terminal_escapes(text: &str) -> Cow<'_, str> {
    if !text.contains('\u{1b}') {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' && chars.peek() == Some(&'[') {
            chars.next();
            // parameters: digits and ';', then one final letter
            while let Some(&p) = chars.peek() {
                if p.is_ascii_digit() || p == ';' {
                    chars.next();
                } else {
                    break;
                }
            }
            if matches!(chars.peek(), Some(p) if p.is_ascii_alphabetic()) {
                chars.next();
            }
            continue;
        }
        out.push(c);
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_prompt() {
        let t = ClipTokenizer::new();
        let ids = t.tokenize("a photo of a dog");
        assert_eq!(&ids[..7], &[49406, 320, 1125, 539, 320, 1929, 49407]);
        assert!(ids[7..].iter().all(|&v| v == 0));
    }

    #[test]
    fn truncation_keeps_eot_last() {
        let t = ClipTokenizer::new();
        let ids = t.tokenize(&"dog ".repeat(200));
        assert_eq!(ids[0], i64::from(SOT));
        assert_eq!(ids[76], i64::from(EOT));
        assert!(ids[1..76].iter().all(|&v| v == 1929));
    }

    #[test]
    fn cleaning() {
        assert_eq!(clean("  fish &amp;amp; chips \n\t x "), "fish & chips x");
        assert_eq!(clean("“hi” ‘there’"), "\"hi\" 'there'");
        assert_eq!(clean("ﬁne ＡＢ　c"), "fine AB c");
        assert_eq!(clean("e\u{301}"), "\u{e9}");
        assert_eq!(clean("\u{1b}[31mred\u{1b}[0m"), "red");
        assert_eq!(clean("a\u{0}b"), "ab");
    }

    #[test]
    fn batch_layout() {
        let t = ClipTokenizer::new();
        let b = t.tokenize_batch(&["a", "b"]);
        assert_eq!(b.len(), 2 * CONTEXT_LENGTH);
        assert_eq!(b[0], i64::from(SOT));
        assert_eq!(b[CONTEXT_LENGTH], i64::from(SOT));
    }
}
