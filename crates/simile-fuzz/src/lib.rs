//! Test support for simile's fuzz harnesses (a dev-dependency only; stable Rust).
//!
//! Pure random bytes rarely get past a parser's first check, so the harnesses start from
//! **valid inputs** and mutate them: [`bytes_from`] flips, inserts, deletes, truncates and splices
//! bytes and rewrites numbers in the text (huge, negative, `NaN`, `1e999`); [`json_from`] also
//! mutates the JSON tree (a value replaced by a number at the edge, a long or hostile string, a
//! wrong type; a key removed; an element repeated) before the byte mutations. Both are
//! [proptest](mod@proptest) strategies, so a failure is shrunk to a minimal input before it is reported.
//!
//! [`check`] runs a harness:
//!
//! - **short pass** (the default, what `cargo test` and `cargo xtask ci` run): a fixed number of
//!   cases from a fixed seed, so a run takes a few seconds and is reproducible;
//!   `PROPTEST_CASES` overrides the number;
//! - **long pass**: with `SIMILE_FUZZ_SECONDS=N`, runs of fresh seeds until N seconds have passed
//!   (`cargo xtask fuzz --minutes M` splits M minutes over every harness). The seed of each run is
//!   printed; `SIMILE_FUZZ_SEED=<hex>` replays one.
//!
//! The property a harness checks is its own (typically: never a panic, always `Ok` or a typed
//! error, and a round trip where there is one); a panic inside it is a failure too.
#![allow(clippy::print_stderr)]

use std::fmt;
use std::time::{Duration, Instant};

pub use proptest;
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestError, TestRng, TestRunner};
use serde_json::Value;

/// The seed of the short pass (fixed, so CI is reproducible).
const SHORT_SEED: u64 = 0x5eed_f055;

/// Bytes shown as an escaped byte string, so a failing input can be pasted into a regression
/// test (`b"..."`).
#[derive(Clone, PartialEq, Eq)]
pub struct Bytes(pub Vec<u8>);

impl fmt::Debug for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "b\"{}\"", self.0.escape_ascii())
    }
}

/// Runs `test` over `cases` inputs from `strategy` (short pass), or for `SIMILE_FUZZ_SECONDS`
/// (long pass). Panics with the minimal failing input.
pub fn check<S>(
    name: &str,
    cases: u32,
    strategy: S,
    test: impl Fn(S::Value) -> Result<(), TestCaseError>,
) where
    S: Strategy,
    S::Value: fmt::Debug,
{
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(cases)
        .max(1);
    let seconds: Option<u64> = std::env::var("SIMILE_FUZZ_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .filter(|s| *s > 0);
    let replay: Option<u64> = std::env::var("SIMILE_FUZZ_SEED")
        .ok()
        .and_then(|s| u64::from_str_radix(s.trim_start_matches("0x"), 16).ok());
    let config = Config {
        cases,
        failure_persistence: None,
        max_shrink_iters: 2048,
        ..Config::default()
    };
    let deadline = seconds.map(|s| Instant::now() + Duration::from_secs(s));
    let mut seed = replay.unwrap_or(SHORT_SEED);
    if deadline.is_some() && replay.is_none() {
        seed = time_seed();
    }
    let mut total = 0u64;
    loop {
        let mut bytes = [0u8; 32];
        bytes[..8].copy_from_slice(&seed.to_le_bytes());
        let rng = TestRng::from_seed(RngAlgorithm::ChaCha, &bytes);
        let mut runner = TestRunner::new_with_rng(config.clone(), rng);
        match runner.run(&strategy, &test) {
            Ok(()) => {}
            Err(TestError::Fail(reason, input)) => panic!(
                "fuzz target '{name}' failed after {total} earlier cases (replay: \
                 SIMILE_FUZZ_SEED={seed:x}): {reason}\nminimal input: {input:?}"
            ),
            Err(TestError::Abort(reason)) => {
                panic!("fuzz target '{name}' aborted (seed {seed:x}): {reason}")
            }
        }
        total += u64::from(cases);
        match deadline {
            Some(d) if Instant::now() < d && replay.is_none() => {
                seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1)
            }
            _ => break,
        }
    }
    if seconds.is_some() {
        eprintln!("fuzz target '{name}': {total} cases, no failure");
    }
}

fn time_seed() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64)
}

/// Numbers at the edges, as text (some are not valid JSON: that is the point).
pub const EDGE_NUMBERS: &[&str] = &[
    "0",
    "-1",
    "-0.0",
    "1.5",
    "4294967296",
    "18446744073709551615",
    "18446744073709551616",
    "-9223372036854775808",
    "9007199254740993",
    "1e308",
    "1e999",
    "-1e999",
    "NaN",
    "inf",
    "-Infinity",
    "1e-400",
    "00",
    "99999999999999999999999999",
];

/// One change to a byte string.
#[derive(Debug, Clone)]
enum ByteOp {
    Set(Index, u8),
    Insert(Index, Vec<u8>),
    Delete(Index, usize),
    Truncate(Index),
    /// Copy `len` bytes from the first position to the second.
    Splice(Index, Index, usize),
    /// Replace the n-th run of ASCII digits with an edge number.
    Number(Index, usize),
}

fn byte_op() -> impl Strategy<Value = ByteOp> {
    let interesting = prop_oneof![
        Just(b"\x00".to_vec()),
        Just(b"\xff".to_vec()),
        Just(b"\"".to_vec()),
        Just(b"\\".to_vec()),
        Just(b"\n".to_vec()),
        Just("é".as_bytes().to_vec()),
        Just(b"{".to_vec()),
        Just(b"[".to_vec()),
        Just(b",".to_vec()),
        prop::collection::vec(any::<u8>(), 1..8),
    ];
    prop_oneof![
        3 => (any::<Index>(), any::<u8>()).prop_map(|(i, b)| ByteOp::Set(i, b)),
        2 => (any::<Index>(), interesting).prop_map(|(i, b)| ByteOp::Insert(i, b)),
        2 => (any::<Index>(), 1usize..16).prop_map(|(i, n)| ByteOp::Delete(i, n)),
        1 => any::<Index>().prop_map(ByteOp::Truncate),
        1 => (any::<Index>(), any::<Index>(), 1usize..64).prop_map(|(a, b, n)| ByteOp::Splice(a, b, n)),
        3 => (any::<Index>(), 0..EDGE_NUMBERS.len()).prop_map(|(i, n)| ByteOp::Number(i, n)),
    ]
}

fn apply_byte_op(b: &mut Vec<u8>, op: &ByteOp) {
    let at = |i: &Index, len: usize| if len == 0 { 0 } else { i.index(len) };
    match op {
        ByteOp::Set(i, v) => {
            if !b.is_empty() {
                let p = at(i, b.len());
                b[p] = *v;
            }
        }
        ByteOp::Insert(i, v) => {
            let p = at(i, b.len() + 1);
            b.splice(p..p, v.iter().copied());
        }
        ByteOp::Delete(i, n) => {
            if !b.is_empty() {
                let p = at(i, b.len());
                let end = (p + n).min(b.len());
                b.drain(p..end);
            }
        }
        ByteOp::Truncate(i) => {
            let p = at(i, b.len() + 1);
            b.truncate(p);
        }
        ByteOp::Splice(from, to, n) => {
            if !b.is_empty() {
                let s = at(from, b.len());
                let chunk: Vec<u8> = b[s..(s + n).min(b.len())].to_vec();
                let p = at(to, b.len() + 1);
                b.splice(p..p, chunk);
            }
        }
        ByteOp::Number(i, n) => {
            let runs = digit_runs(b);
            if !runs.is_empty() {
                let (s, e) = runs[at(i, runs.len())];
                b.splice(s..e, EDGE_NUMBERS[*n].bytes());
            }
        }
    }
}

/// The `(start, end)` of each run of ASCII digits (with a leading `-`).
fn digit_runs(b: &[u8]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i].is_ascii_digit() {
            let mut s = i;
            if s > 0 && b[s - 1] == b'-' {
                s -= 1;
            }
            while i < b.len() && (b[i].is_ascii_digit() || b[i] == b'.') {
                i += 1;
            }
            out.push((s, i));
        } else {
            i += 1;
        }
    }
    out
}

/// Mutations of `seed` (up to `max_ops` byte changes; sometimes none, so the valid input itself
/// is among the cases).
pub fn bytes_from(seed: Vec<u8>, max_ops: usize) -> impl Strategy<Value = Bytes> {
    prop::collection::vec(byte_op(), 0..=max_ops).prop_map(move |ops| {
        let mut b = seed.clone();
        for op in &ops {
            apply_byte_op(&mut b, op);
        }
        Bytes(b)
    })
}

/// Values that break assumptions: edges of numbers and strings, wrong types.
fn hostile_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        Just(Value::Bool(true)),
        Just(serde_json::json!(-1)),
        Just(serde_json::json!(0)),
        Just(serde_json::json!(u64::MAX)),
        Just(serde_json::json!(i64::MIN)),
        Just(serde_json::json!(1e308)),
        Just(serde_json::json!(-1e308)),
        Just(serde_json::json!(0.5)),
        Just(serde_json::json!(-0.0)),
        Just(serde_json::json!("")),
        Just(serde_json::json!("../../../../etc/passwd")),
        Just(serde_json::json!("/etc/passwd")),
        Just(serde_json::json!("\u{0}")),
        Just(serde_json::json!("ünïcødé 🦀")),
        Just(serde_json::json!("5f1e2d3c4b5a697887960a1b")),
        Just(Value::String("x".repeat(10_000))),
        Just(serde_json::json!([])),
        Just(serde_json::json!({})),
        Just(serde_json::json!([[[[[[[[[[1]]]]]]]]]])),
        "[a-z_]{0,12}".prop_map(Value::String),
        any::<i64>().prop_map(|n| serde_json::json!(n)),
        any::<f64>().prop_map(|x| serde_json::json!(x)),
    ]
}

/// One change to a JSON tree, at the node chosen by the index (in pre-order).
#[derive(Debug, Clone)]
enum JsonOp {
    Replace(Index, Value),
    Remove(Index),
    /// Repeat an array element or wrap the node in an array.
    Repeat(Index),
}

fn json_op() -> impl Strategy<Value = JsonOp> {
    prop_oneof![
        4 => (any::<Index>(), hostile_value()).prop_map(|(i, v)| JsonOp::Replace(i, v)),
        2 => any::<Index>().prop_map(JsonOp::Remove),
        1 => any::<Index>().prop_map(JsonOp::Repeat),
    ]
}

/// JSON pointers of every node, in pre-order.
fn pointers(v: &Value, at: String, out: &mut Vec<String>) {
    out.push(at.clone());
    match v {
        Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                pointers(x, format!("{at}/{i}"), out);
            }
        }
        Value::Object(m) => {
            for (k, x) in m {
                let k = k.replace('~', "~0").replace('/', "~1");
                pointers(x, format!("{at}/{k}"), out);
            }
        }
        _ => {}
    }
}

fn apply_json_op(root: &mut Value, op: &JsonOp) {
    let mut all = Vec::new();
    pointers(root, String::new(), &mut all);
    let pick = |i: &Index| all[i.index(all.len())].clone();
    match op {
        JsonOp::Replace(i, v) => {
            if let Some(node) = root.pointer_mut(&pick(i)) {
                *node = v.clone();
            }
        }
        JsonOp::Remove(i) => {
            let p = pick(i);
            if let Some((parent, last)) = p.rsplit_once('/') {
                match root.pointer_mut(parent) {
                    Some(Value::Object(m)) => {
                        m.remove(&last.replace("~1", "/").replace("~0", "~"));
                    }
                    Some(Value::Array(a)) => {
                        if let Ok(n) = last.parse::<usize>() {
                            if n < a.len() {
                                a.remove(n);
                            }
                        }
                    }
                    _ => {}
                }
            }
        }
        JsonOp::Repeat(i) => {
            let p = pick(i);
            if let Some((parent, last)) = p.rsplit_once('/') {
                if let Some(Value::Array(a)) = root.pointer_mut(parent) {
                    if let Ok(n) = last.parse::<usize>() {
                        if n < a.len() {
                            let x = a[n].clone();
                            a.insert(n, x);
                            return;
                        }
                    }
                }
            }
            if let Some(node) = root.pointer_mut(&p) {
                *node = Value::Array(vec![node.take()]);
            }
        }
    }
}

/// Mutations of a valid JSON document: tree changes, then (sometimes) byte changes of its text.
pub fn json_from(seed: Value) -> impl Strategy<Value = Bytes> {
    (
        prop::collection::vec(json_op(), 0..4),
        prop::collection::vec(byte_op(), 0..3),
        prop::bool::weighted(0.3),
    )
        .prop_map(move |(tree, bytes, use_bytes)| {
            let mut v = seed.clone();
            for op in &tree {
                apply_json_op(&mut v, op);
            }
            let mut b = serde_json::to_vec(&v).unwrap_or_default();
            if use_bytes {
                for op in &bytes {
                    apply_byte_op(&mut b, op);
                }
            }
            Bytes(b)
        })
}

/// Mutations of a valid JSON document, as a tree (for harnesses that must send JSON).
pub fn json_value_from(seed: Value) -> impl Strategy<Value = Value> {
    prop::collection::vec(json_op(), 0..4).prop_map(move |ops| {
        let mut v = seed.clone();
        for op in &ops {
            apply_json_op(&mut v, op);
        }
        v
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::strategy::ValueTree;

    #[test]
    fn mutations_change_inputs_and_keep_some_valid() {
        let seed = serde_json::json!({"a": [1, 2, {"b": "c"}], "d": 3});
        let mut changed = 0;
        let mut same = 0;
        let mut runner = TestRunner::deterministic();
        for _ in 0..200 {
            let v = json_from(seed.clone())
                .new_tree(&mut runner)
                .map(|t| t.current())
                .unwrap_or_else(|e| panic!("{e}"));
            if serde_json::from_slice::<Value>(&v.0).ok() == Some(seed.clone()) {
                same += 1;
            } else {
                changed += 1;
            }
        }
        assert!(changed > 100 && same > 0, "changed {changed}, same {same}");
    }

    #[test]
    fn numbers_are_rewritten_at_the_edges() {
        let mut runner = TestRunner::deterministic();
        let i = any::<Index>()
            .new_tree(&mut runner)
            .map(|t| t.current())
            .unwrap_or_else(|e| panic!("{e}"));
        let mut b = b"[12, -3.5]".to_vec();
        apply_byte_op(&mut b, &ByteOp::Number(i, 10));
        let text = b.escape_ascii().to_string();
        assert!(text == "[1e999, -3.5]" || text == "[12, 1e999]", "{text}");
        assert_eq!(digit_runs(b"a-12.5b7"), vec![(1, 6), (7, 8)]);
        assert_eq!(
            format!("{:?}", Bytes(b"a\x00\"".to_vec())),
            "b\"a\\x00\\\"\""
        );
    }

    #[test]
    fn a_failing_property_reports_the_shrunk_input() {
        let r = std::panic::catch_unwind(|| {
            check("t", 64, bytes_from(b"abcdefgh".to_vec(), 4), |b| {
                prop_assert!(!b.0.contains(&b'\xff'));
                Ok(())
            })
        });
        let msg = r
            .err()
            .and_then(|e| e.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        assert!(
            msg.contains("minimal input") && msg.contains("\\xff"),
            "{msg}"
        );
    }
}
