//! Keys and sample ids: owned (strings plus a key → row map), or read in place from an index file.
//!
//! In a file (format v2, see the `format` module) they take three sections:
//!
//! * **strings**: per row its key's UTF-8 bytes, then its sample id's (left out when it is the
//!   same as the key);
//! * **offsets**: `2n + 1` little-endian `u64`: `o[2r]` where row r's key starts, `o[2r + 1]`
//!   where it ends and its sample id starts, `o[2r + 2]` where that ends (the next row's key).
//!   Bit 63 of `o[2r + 1]` set means "the sample id is the key" (its own range is then empty);
//! * **hash table**: a power-of-two number of `u32` slots (more than n, about 2n), each a row
//!   number or `u32::MAX` (empty); a key is looked for from slot `key_hash(key) mod slots` on,
//!   one slot at a time (linear probing), until its row or an empty slot.
//!
//! So a row's ids and a key's row cost O(1) with nothing parsed at open. Accessors never panic
//! on a damaged file: an out-of-range offset or invalid UTF-8 reads as an empty id, and a full
//! table ends the probe; [`MappedIds::check`] (part of the file's full verification) finds
//! such damage.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;

/// Version of [`key_hash`] that a file's hash table was built with (recorded in its header).
pub(crate) const HASH_VERSION: u32 = 1;
/// An empty hash-table slot.
const EMPTY: u32 = u32::MAX;
/// Flag in `o[2r + 1]`: the sample id is the key.
const SAME: u64 = 1 << 63;

/// The key → row map. Keys are ids from the user's own dataset, so a fast non-keyed hash (FxHash's
/// multiply-rotate, 8 bytes per step, plus a final avalanche) is fine and several times faster than
/// SipHash here.
pub(crate) type KeyMap = HashMap<String, usize, BuildHasherDefault<FxHasher>>;

/// The FxHash function (as used by rustc), with a murmur3 finaliser. Deterministic: files store
/// tables built with it ([`HASH_VERSION`]); any change to it must bump that version.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct FxHasher {
    hash: u64,
}

const FX_SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

impl FxHasher {
    #[inline]
    fn add(&mut self, word: u64) {
        self.hash = (self.hash.rotate_left(5) ^ word).wrapping_mul(FX_SEED);
    }
}

impl Hasher for FxHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            self.add(u64::from_le_bytes([
                c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7],
            ]));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut last = [0u8; 8];
            last[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(last));
        }
    }
    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }
    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }
    #[inline]
    fn finish(&self) -> u64 {
        // Plain FxHash leaves the low bits (hashbrown's bucket index) depending on few input
        // bits; finish with murmur3's avalanche so ids that differ in one character spread out.
        let mut h = self.hash;
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 33;
        h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        h ^ (h >> 33)
    }
}

/// The hash of a key in a file's table (version [`HASH_VERSION`]): its bytes, then its length
/// as a `u64`, through [`FxHasher`].
pub(crate) fn key_hash(key: &str) -> u64 {
    let mut h = FxHasher::default();
    h.write(key.as_bytes());
    h.add(key.len() as u64);
    h.finish()
}

/// Ids held in memory.
#[derive(Default)]
pub(crate) struct OwnedIds {
    pub(crate) keys: Vec<String>,
    pub(crate) sample_ids: Vec<String>,
    pub(crate) rows: KeyMap,
}

/// Ids read in place from a file's three id sections (validated for size and place by the
/// `format` module: `offsets` holds `2n + 1` entries, `slots` is 0 or a power of two).
pub(crate) struct MappedIds {
    pub(crate) map: Arc<memmap2::Mmap>,
    pub(crate) n: usize,
    /// Byte range of the strings section.
    pub(crate) strings: (usize, usize),
    /// Byte offset of the offsets section.
    pub(crate) offsets: usize,
    /// Byte offset of the hash table and its number of slots.
    pub(crate) table: usize,
    pub(crate) slots: usize,
}

impl MappedIds {
    fn u64_at(&self, at: usize) -> u64 {
        self.map
            .get(at..at.saturating_add(8))
            .map_or(u64::MAX, |b| {
                u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]])
            })
    }

    /// Entry `i` of the offsets table, and its flag.
    fn entry(&self, i: usize) -> (usize, bool) {
        let v = self.u64_at(self.offsets.saturating_add(i.saturating_mul(8)));
        (
            usize::try_from(v & !SAME).unwrap_or(usize::MAX),
            v & SAME != 0,
        )
    }

    /// Bytes `a..b` of the strings section as text; empty when out of range or not UTF-8.
    fn text(&self, a: usize, b: usize) -> &str {
        let (start, len) = self.strings;
        if a > b || b > len {
            return "";
        }
        std::str::from_utf8(&self.map[start + a..start + b]).unwrap_or("")
    }

    fn key(&self, r: usize) -> &str {
        if r >= self.n {
            return "";
        }
        self.text(self.entry(2 * r).0, self.entry(2 * r + 1).0)
    }

    fn sample_id(&self, r: usize) -> &str {
        if r >= self.n {
            return "";
        }
        let (a, same) = self.entry(2 * r + 1);
        if same {
            return self.key(r);
        }
        self.text(a, self.entry(2 * r + 2).0)
    }

    fn slot(&self, s: usize) -> u32 {
        let at = self.table + 4 * s;
        self.map
            .get(at..at + 4)
            .map_or(EMPTY, |b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn row(&self, key: &str) -> Option<usize> {
        if self.slots == 0 {
            return None;
        }
        let mask = self.slots - 1;
        let mut s = (key_hash(key) as usize) & mask;
        for _ in 0..self.slots {
            let r = self.slot(s);
            if r == EMPTY {
                return None;
            }
            if (r as usize) < self.n && self.key(r as usize) == key {
                return Some(r as usize);
            }
            s = (s + 1) & mask;
        }
        None
    }

    /// The full check of the three sections (O(n)): offsets in order and in range, every id
    /// UTF-8, the table holding exactly the n rows, each found from its own key.
    pub(crate) fn check(&self, with_table: bool) -> Result<(), String> {
        let mut last = 0;
        for i in 0..=2 * self.n {
            let (at, same) = self.entry(i);
            if at < last || at > self.strings.1 || (i == 0 && at != 0) {
                return Err(format!("the id offsets table is damaged at entry {i}"));
            }
            if same && (i % 2 == 0 || self.entry(i + 1).0 != at) {
                return Err(format!("the id offsets table is damaged at entry {i}"));
            }
            if i > 0 {
                let (start, _) = self.strings;
                if std::str::from_utf8(&self.map[start + last..start + at]).is_err() {
                    return Err(format!("the id of row {} is not UTF-8", (i - 1) / 2));
                }
            }
            last = at;
        }
        if last != self.strings.1 {
            return Err("the id strings section has trailing bytes".into());
        }
        if !with_table {
            return Ok(());
        }
        let used = (0..self.slots).filter(|&s| self.slot(s) != EMPTY).count();
        if used != self.n
            || (0..self.slots).any(|s| self.slot(s) != EMPTY && self.slot(s) as usize >= self.n)
        {
            return Err("the key hash table does not hold exactly the index's rows".into());
        }
        for r in 0..self.n {
            if self.row(self.key(r)) != Some(r) {
                return Err(format!(
                    "key '{}' (row {r}) is repeated or missing from the hash table",
                    self.key(r)
                ));
            }
        }
        Ok(())
    }
}

/// The ids of every row.
pub(crate) enum Ids {
    Owned(OwnedIds),
    Mapped(MappedIds),
}

impl Default for Ids {
    fn default() -> Self {
        Ids::Owned(OwnedIds::default())
    }
}

impl Ids {
    pub(crate) fn len(&self) -> usize {
        match self {
            Ids::Owned(o) => o.keys.len(),
            Ids::Mapped(m) => m.n,
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Row `r`'s key (`r < len()`).
    pub(crate) fn key(&self, r: usize) -> &str {
        match self {
            Ids::Owned(o) => &o.keys[r],
            Ids::Mapped(m) => m.key(r),
        }
    }

    /// Row `r`'s sample id (`r < len()`).
    pub(crate) fn sample_id(&self, r: usize) -> &str {
        match self {
            Ids::Owned(o) => &o.sample_ids[r],
            Ids::Mapped(m) => m.sample_id(r),
        }
    }

    /// The row of `key`.
    pub(crate) fn row(&self, key: &str) -> Option<usize> {
        match self {
            Ids::Owned(o) => o.rows.get(key).copied(),
            Ids::Mapped(m) => m.row(key),
        }
    }

    #[cfg(test)]
    pub(crate) fn is_mapped(&self) -> bool {
        matches!(self, Ids::Mapped(_))
    }

    /// The owned ids, copying mapped ones out first (O(n), once).
    pub(crate) fn to_mut(&mut self) -> &mut OwnedIds {
        if let Ids::Mapped(m) = self {
            *self = Ids::Owned(copy_out(m));
        }
        match self {
            Ids::Owned(o) => o,
            Ids::Mapped(_) => unreachable!("replaced just above"),
        }
    }
}

/// Copies mapped ids into memory (a repeated key, only possible in a damaged file, keeps its
/// first row in the map).
pub(crate) fn copy_out(m: &MappedIds) -> OwnedIds {
    let mut o = OwnedIds {
        keys: Vec::with_capacity(m.n),
        sample_ids: Vec::with_capacity(m.n),
        rows: KeyMap::with_capacity_and_hasher(m.n, Default::default()),
    };
    for r in 0..m.n {
        let key = m.key(r).to_string();
        o.rows.entry(key.clone()).or_insert(r);
        o.sample_ids.push(m.sample_id(r).to_string());
        o.keys.push(key);
    }
    o
}

/// The three id sections of a file, encoded.
pub(crate) struct Encoded {
    pub(crate) strings: Vec<u8>,
    pub(crate) offsets: Vec<u8>,
    pub(crate) table: Vec<u8>,
}

/// The number of hash-table slots for `n` rows: 0 for none, else the power of two ≥ 2n.
pub(crate) fn slots_for(n: usize) -> usize {
    if n == 0 {
        0
    } else {
        n.saturating_mul(2).next_power_of_two()
    }
}

/// Encodes the ids of every row (keys must be unique, as they are in a store).
pub(crate) fn encode(ids: &Ids) -> Encoded {
    let n = ids.len();
    let mut strings = Vec::new();
    let mut offsets = Vec::with_capacity((2 * n + 1) * 8);
    for r in 0..n {
        let (key, sample) = (ids.key(r), ids.sample_id(r));
        offsets.extend_from_slice(&(strings.len() as u64).to_le_bytes());
        strings.extend_from_slice(key.as_bytes());
        let mut mid = strings.len() as u64;
        if sample == key {
            mid |= SAME;
        } else {
            strings.extend_from_slice(sample.as_bytes());
        }
        offsets.extend_from_slice(&mid.to_le_bytes());
    }
    offsets.extend_from_slice(&(strings.len() as u64).to_le_bytes());
    let slots = slots_for(n);
    let mut table = vec![EMPTY; slots];
    let mask = slots.wrapping_sub(1);
    for r in 0..n {
        let mut s = (key_hash(ids.key(r)) as usize) & mask;
        while table[s] != EMPTY {
            s = (s + 1) & mask;
        }
        table[s] = r as u32;
    }
    let table = table.iter().flat_map(|v| v.to_le_bytes()).collect();
    Encoded {
        strings,
        offsets,
        table,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::hash::BuildHasher;
    use std::io::Write;

    fn spread(hash: impl Fn(&str) -> u64) -> usize {
        (0..4096u64)
            .map(|i| hash(&format!("{:024x}", 0x6543_0000_0000u64 + i)) & 0xFFF)
            .collect::<std::collections::HashSet<u64>>()
            .len()
    }

    #[test]
    fn key_hash_spreads_similar_ids() {
        // Sequential hex ids (the common case) must land in distinct low-bit buckets.
        let build = BuildHasherDefault::<FxHasher>::default();
        assert!(spread(|k| build.hash_one(k)) > 2400);
        assert!(spread(key_hash) > 2400);
    }

    /// The table format depends on this exact function: a change must bump `HASH_VERSION`.
    #[test]
    fn key_hash_is_pinned() {
        assert_eq!(HASH_VERSION, 1);
        assert_eq!(key_hash(""), 0);
        assert_ne!(key_hash("a"), key_hash("a\0"));
        assert_eq!(key_hash("a"), PINNED_A, "{:#x}", key_hash("a"));
    }
    const PINNED_A: u64 = 0x6982_9c35_3d23_b936;

    fn map_of(bytes: &[u8]) -> Arc<memmap2::Mmap> {
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(bytes).unwrap();
        // SAFETY: a private temporary file nobody else writes.
        Arc::new(unsafe { memmap2::Mmap::map(&f) }.unwrap())
    }

    /// `ids` encoded and laid out as strings, padding to 8 bytes, offsets, table.
    fn mapped(ids: &Ids) -> MappedIds {
        let e = encode(ids);
        let offsets = e.strings.len().div_ceil(8) * 8;
        let mut bytes = e.strings.clone();
        bytes.resize(offsets, 0);
        bytes.extend_from_slice(&e.offsets);
        bytes.extend_from_slice(&e.table);
        MappedIds {
            map: map_of(&bytes),
            n: ids.len(),
            strings: (0, e.strings.len()),
            offsets,
            table: offsets + e.offsets.len(),
            slots: e.table.len() / 4,
        }
    }

    fn owned(n: usize, sample: impl Fn(usize, &str) -> String) -> Ids {
        let mut o = OwnedIds::default();
        for i in 0..n {
            let key = format!("k{i}");
            o.sample_ids.push(sample(i, &key));
            o.rows.insert(key.clone(), i);
            o.keys.push(key);
        }
        Ids::Owned(o)
    }

    #[test]
    fn encoded_ids_read_back_in_place() {
        let ids = owned(1000, |i, key| match i % 3 {
            0 => key.to_string(),
            1 => format!("sample-é-{}", i / 3),
            _ => String::new(),
        });
        let m = mapped(&ids);
        m.check(true).unwrap();
        let mut back = Ids::Mapped(m);
        for r in 0..1000 {
            assert_eq!(back.key(r), ids.key(r));
            assert_eq!(back.sample_id(r), ids.sample_id(r), "row {r}");
            assert_eq!(back.row(ids.key(r)), Some(r));
        }
        assert_eq!(back.row("nope"), None);
        assert_eq!(back.key(5000), "");
        let o = back.to_mut();
        assert_eq!(o.rows["k17"], 17);
        assert_eq!(o.sample_ids[2], "");
        assert!(!back.is_mapped());
        assert!(mapped(&Ids::default()).check(true).is_ok());
    }

    #[test]
    fn damaged_id_sections_fail_the_check_without_panicking() {
        let good = mapped(&owned(50, |i, _| format!("s{i}")));
        let bytes = good.map.to_vec();
        let u64_at = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap());
        let slot_of = |r: u32| {
            (0..good.slots)
                .find(|&s| bytes[good.table + 4 * s..][..4] == r.to_le_bytes())
                .unwrap()
        };
        let (off, table) = (good.offsets, good.table);
        type Damage<'a> = Box<dyn Fn(&mut Vec<u8>) + 'a>;
        let damages: Vec<(&str, Damage<'_>)> = vec![
            (
                "offset past the strings",
                Box::new(move |b| b[off + 8 * 7 + 6] = 0x40),
            ),
            (
                "offsets out of order",
                Box::new(move |b| {
                    b[off + 8 * 9..][..8].copy_from_slice(&(u64_at(off + 8 * 7)).to_le_bytes())
                }),
            ),
            ("id not UTF-8", Box::new(|b| b[1] |= 0x80)),
            (
                "table slot emptied",
                Box::new(move |b| b[table + 4 * slot_of(3)..][..4].fill(0xFF)),
            ),
            (
                "row listed twice",
                Box::new(move |b| {
                    b[table + 4 * slot_of(3)..][..4].copy_from_slice(&4u32.to_le_bytes())
                }),
            ),
            (
                "slot past the rows",
                Box::new(move |b| {
                    b[table + 4 * slot_of(3)..][..4].copy_from_slice(&77u32.to_le_bytes())
                }),
            ),
            (
                "last offset wrong",
                Box::new(move |b| b[off + 8 * 100..][..8].copy_from_slice(&1u64.to_le_bytes())),
            ),
        ];
        // `good`'s layout over other bytes.
        let with_bytes = |b: &[u8]| MappedIds {
            map: map_of(b),
            n: good.n,
            strings: good.strings,
            offsets: good.offsets,
            table: good.table,
            slots: good.slots,
        };
        for (what, damage) in damages {
            let mut bad = bytes.clone();
            damage(&mut bad);
            let m = with_bytes(&bad);
            // Reading never panics; the check notices.
            for r in 0..60 {
                let _ = (m.key(r), m.sample_id(r), m.row(&format!("k{r}")));
            }
            assert!(m.check(true).is_err(), "{what}");
        }
        // Random flips: reading never panics.
        for at in (0..bytes.len()).step_by(5) {
            let mut bad = bytes.clone();
            bad[at] ^= 0xA5;
            let m = with_bytes(&bad);
            for r in 0..55 {
                let _ = (m.key(r), m.sample_id(r), m.row(&format!("k{r}")));
            }
            let _ = m.check(true);
        }
    }
}
