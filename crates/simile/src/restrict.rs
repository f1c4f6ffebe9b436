//! View restrictions for k-NN queries, cached: the index keys of a view are read from SQL once
//! per database version and handed to the backend with a token naming that key set
//! ([`KnnQuery::restrict_token`](simile_index::KnnQuery)), so the backend can keep what it
//! derived from them (the exact backend: the sorted rows) across queries.
//!
//! Invalidation: an entry is reused only for the same dataset, index kind (samples, or the
//! patches of one field), the same stages (compared in full) and the same database version —
//! this session's connection's change count plus SQLite's `data_version`, which moves when
//! another connection (or process) commits. Any change to the database therefore makes the next
//! query re-read the view's keys; when they come out the same, the old token is kept (the
//! backend's rows stay valid). Changes to the index itself are the backend's to notice: it keys
//! its cache by token *and* its own content generation.
use std::collections::HashSet;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use simile_dataset::{Stage, Store};

use crate::Result;

/// Restrictions kept at once (the least recently used goes first).
const MAX_CACHED: usize = 4;

/// Tokens are unique in the process: no two key sets ever share one.
static NEXT_TOKEN: AtomicU64 = AtomicU64::new(1);

/// A view's index keys, optionally named by a token.
#[derive(Debug)]
pub(crate) struct Restriction {
    keys: Vec<String>,
    token: Option<u64>,
    /// Hashes of the keys, built on the first membership question.
    hashes: OnceLock<HashSet<u64>>,
}

fn hash_key(key: &str) -> u64 {
    let mut h = DefaultHasher::new();
    key.hash(&mut h);
    h.finish()
}

impl Restriction {
    /// Keys named by a fresh token (for keys that will be asked about again).
    pub(crate) fn named(keys: Vec<String>) -> Self {
        Restriction {
            keys,
            token: Some(NEXT_TOKEN.fetch_add(1, Ordering::Relaxed)),
            hashes: OnceLock::new(),
        }
    }

    /// Keys for one query only.
    pub(crate) fn once(keys: Vec<String>) -> Self {
        Restriction {
            keys,
            token: None,
            hashes: OnceLock::new(),
        }
    }

    pub(crate) fn keys(&self) -> &[String] {
        &self.keys
    }

    pub(crate) fn token(&self) -> Option<u64> {
        self.token
    }

    /// Whether `key` is one of the keys: O(1) after a first call that hashes them all; a hash
    /// match is confirmed against the keys themselves.
    pub(crate) fn contains(&self, key: &str) -> bool {
        let hashes = self
            .hashes
            .get_or_init(|| self.keys.iter().map(|k| hash_key(k)).collect());
        hashes.contains(&hash_key(key)) && self.keys.iter().any(|k| k == key)
    }
}

struct Entry {
    dataset: i64,
    patches: Option<String>,
    stages: Vec<Stage>,
    version: (i64, u64),
    restriction: Arc<Restriction>,
}

/// The session's cached restrictions.
#[derive(Default)]
pub(crate) struct RestrictionCache(Mutex<Vec<Entry>>);

impl std::fmt::Debug for RestrictionCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RestrictionCache").finish_non_exhaustive()
    }
}

/// The database's version as this connection sees it: changes through this connection, and
/// commits by others (`data_version`).
fn version(store: &Store) -> Result<(i64, u64)> {
    Ok(store.read(|c| {
        let v: i64 = c.query_row("PRAGMA data_version", [], |r| r.get(0))?;
        Ok::<_, rusqlite::Error>((v, c.total_changes()))
    })?)
}

impl RestrictionCache {
    /// The restriction of a view (`stages` of dataset `dataset`; `patches`: the label field of a
    /// patch index), from the cache when nothing in the database changed since it was read,
    /// else from `load` (which reads the view's keys).
    pub(crate) fn get_or_load(
        &self,
        store: &Store,
        dataset: i64,
        patches: Option<&str>,
        stages: &[Stage],
        load: impl FnOnce() -> Result<Vec<String>>,
    ) -> Result<Arc<Restriction>> {
        // Read before the keys: a change committed in between makes the entry stale at once
        // (the next query sees a newer version), never current with old keys.
        let version = version(store)?;
        let same = |e: &Entry| {
            e.dataset == dataset && e.patches.as_deref() == patches && e.stages == stages
        };
        let previous = {
            let mut entries = self.lock();
            match entries.iter().position(same) {
                Some(pos) => {
                    let entry = entries.remove(pos);
                    if entry.version == version {
                        let r = Arc::clone(&entry.restriction);
                        entries.push(entry);
                        return Ok(r);
                    }
                    Some(entry.restriction)
                }
                None => None,
            }
        };
        let keys = load()?;
        let restriction = match previous {
            // Same keys as before the change: the backend's derived rows stay valid.
            Some(old) if old.keys == keys => old,
            _ => Arc::new(Restriction::named(keys)),
        };
        let mut entries = self.lock();
        entries.retain(|e| !same(e));
        if entries.len() >= MAX_CACHED {
            entries.remove(0);
        }
        entries.push(Entry {
            dataset,
            patches: patches.map(str::to_string),
            stages: stages.to_vec(),
            version,
            restriction: Arc::clone(&restriction),
        });
        Ok(restriction)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Entry>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_unique_and_membership_is_exact() {
        let a = Restriction::named(vec!["x".into(), "y".into()]);
        let b = Restriction::named(vec!["x".into(), "y".into()]);
        assert_ne!(a.token(), b.token());
        assert!(a.token().is_some());
        assert_eq!(Restriction::once(vec![]).token(), None);
        assert!(a.contains("x") && a.contains("y"));
        assert!(!a.contains("z") && !a.contains(""));
    }

    #[test]
    fn an_entry_is_reused_until_the_database_changes() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let cache = RestrictionCache::default();
        let stages = [Stage::Limit(3)];
        let load = |keys: &[&str]| {
            let keys: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
            move || Ok(keys)
        };
        let first = cache
            .get_or_load(&store, 1, None, &stages, load(&["a", "b"]))
            .unwrap();
        // Same view, same version: cached (the loader would give other keys).
        let again = cache
            .get_or_load(&store, 1, None, &stages, load(&["zz"]))
            .unwrap();
        assert!(Arc::ptr_eq(&first, &again));
        // Another view, dataset or index kind: its own entry.
        let other = cache
            .get_or_load(&store, 1, Some("gt"), &stages, load(&["c"]))
            .unwrap();
        assert_eq!(other.keys(), ["c"]);
        let other = cache
            .get_or_load(&store, 2, None, &stages, load(&["d"]))
            .unwrap();
        assert_eq!(other.keys(), ["d"]);
        // A change to the database: the keys are read again.
        let bump = || {
            store
                .write(|tx| {
                    tx.execute_batch(
                        "CREATE TABLE IF NOT EXISTS bump (x); INSERT INTO bump VALUES (1);",
                    )
                })
                .unwrap();
        };
        bump();
        let same_keys = cache
            .get_or_load(&store, 1, None, &stages, load(&["a", "b"]))
            .unwrap();
        assert_eq!(
            same_keys.token(),
            first.token(),
            "unchanged keys keep their token"
        );
        bump();
        let changed = cache
            .get_or_load(&store, 1, None, &stages, load(&["a"]))
            .unwrap();
        assert_eq!(changed.keys(), ["a"]);
        assert_ne!(changed.token(), first.token());
    }
}
