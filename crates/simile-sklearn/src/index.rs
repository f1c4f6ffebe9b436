use std::any::Any;
use std::collections::HashMap;
use std::fmt;
use std::hash::{DefaultHasher, Hasher};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Instant;

use serde_json::{Map, Value};
use simile_index::{
    BorrowedRows, Capabilities, Embeddings, Error, KnnQuery, Metric, Neighbor, Result,
    SimilarityBackend,
};

use crate::build::Builder;
use crate::ids::FxHasher;
use crate::store::Store;
use crate::{search, storage, BACKEND};

/// The exact, in-process similarity index: brute-force k-NN over contiguous `f32` rows, persisted
/// as one compact binary file (`vectors.simv`) in its storage directory.
///
/// Thread-safe: queries run concurrently under a read lock, changes take a write lock.
pub struct SklearnIndex {
    metric: Metric,
    /// `None`: memory only (`persist` is a no-op).
    dir: Option<PathBuf>,
    store: RwLock<Store>,
    /// The store generation last written to disk; also serialises concurrent `persist` calls.
    persisted: Mutex<u64>,
    /// Restrictions (views) resolved to rows, most recently used last: repeated queries on the
    /// same view skip the key lookups.
    view_cache: Mutex<Vec<ViewCache>>,
}

/// A resolved restriction, valid for one store generation.
struct ViewCache {
    generation: u64,
    key: ViewKey,
    /// The rows of the keys present in the index, ascending: the scan visits them in memory
    /// order.
    rows: Arc<Vec<u32>>,
}

/// What names a cached restriction.
#[derive(PartialEq, Eq)]
enum ViewKey {
    /// The caller's token ([`KnnQuery::restrict_token`]): the keys are not even read.
    Token(u64),
    /// No token: the keys' count and fingerprint.
    Keys { len: usize, fingerprint: (u64, u64) },
}

/// Restrictions without a token and with fewer keys are resolved directly (it is cheaper than
/// fingerprinting).
const VIEW_CACHE_MIN: usize = 2048;
/// Resolved restrictions kept at once.
const VIEW_CACHE_ENTRIES: usize = 4;

/// A 128-bit fingerprint of a key list (two independent hashes of the keys and their lengths).
fn fingerprint(keys: &[String]) -> (u64, u64) {
    let mut a = FxHasher::default();
    let mut b = DefaultHasher::new();
    for k in keys {
        a.write(k.as_bytes());
        a.write_usize(k.len());
        b.write(k.as_bytes());
        b.write_usize(k.len());
    }
    (a.finish(), b.finish())
}

impl fmt::Debug for SklearnIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("SklearnIndex");
        d.field("metric", &self.metric).field("dir", &self.dir);
        if let Ok(s) = self.store.try_read() {
            d.field("size", &s.len()).field("dim", &s.dim);
        }
        d.finish_non_exhaustive()
    }
}

impl SklearnIndex {
    /// An empty index that lives in memory only.
    pub fn in_memory(metric: Metric) -> Self {
        SklearnIndex {
            metric,
            dir: None,
            store: RwLock::new(Store::default()),
            persisted: Mutex::new(0),
            view_cache: Mutex::new(Vec::new()),
        }
    }

    /// An empty index whose file will live in `dir` (created if needed). Nothing is written until
    /// [`persist`](SimilarityBackend::persist); an existing index file there is replaced then.
    pub fn create(dir: impl AsRef<Path>, metric: Metric) -> Result<Self> {
        let dir = dir.as_ref();
        std::fs::create_dir_all(dir).map_err(|source| Error::Io {
            path: dir.display().to_string(),
            source,
        })?;
        let store = Store {
            // Not yet on disk: the first persist writes the (possibly empty) file.
            generation: 1,
            ..Store::default()
        };
        Ok(SklearnIndex {
            metric,
            dir: Some(dir.to_path_buf()),
            store: RwLock::new(store),
            persisted: Mutex::new(0),
            view_cache: Mutex::new(Vec::new()),
        })
    }

    /// Loads the index persisted in `dir`. A missing file is [`Error::IndexMissing`]; a truncated
    /// or damaged one is [`Error::Corrupt`] naming the file.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref();
        let started = Instant::now();
        let (metric, store) = storage::read(dir)?;
        tracing::debug!(
            dir = %dir.display(),
            rows = store.len(),
            elapsed_ms = started.elapsed().as_secs_f64() * 1e3,
            "loaded sklearn index"
        );
        Ok(SklearnIndex {
            metric,
            dir: Some(dir.to_path_buf()),
            store: RwLock::new(store),
            persisted: Mutex::new(0),
            view_cache: Mutex::new(Vec::new()),
        })
    }

    /// Checks the persisted index file completely (O(file size)): every section's checksum,
    /// finite vectors, the derived bfloat16 rows and norms, the ids and the key hash table.
    /// [`open`](Self::open) checks only the header and section table of files above 8 MiB, so
    /// damage inside a big file shows here (as [`Error::Corrupt`]), not at open. Checks the file
    /// on disk, not unpersisted changes; `Ok` for an in-memory index.
    pub fn verify(&self) -> Result<()> {
        match &self.dir {
            Some(dir) => storage::verify_file(dir),
            None => Ok(()),
        }
    }

    /// The storage directory (`None` for an in-memory index).
    pub fn storage_dir(&self) -> Option<&Path> {
        self.dir.as_deref()
    }

    /// The index file (`None` for an in-memory index).
    pub fn file_path(&self) -> Option<PathBuf> {
        self.dir.as_deref().map(storage::file_path)
    }

    fn read(&self) -> RwLockReadGuard<'_, Store> {
        self.store.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, Store> {
        self.store.write().unwrap_or_else(PoisonError::into_inner)
    }

    fn missing(&self) -> Error {
        Error::IndexMissing {
            backend: BACKEND,
            name: self
                .dir
                .as_deref()
                .map_or_else(|| "in-memory".to_string(), |d| d.display().to_string()),
        }
    }

    /// The rows of a restriction, from the view cache when the same restriction (by token, or
    /// by fingerprint) was resolved against the store as it is now.
    fn resolve(&self, store: &Store, keys: &[String], token: Option<u64>) -> Arc<Vec<u32>> {
        let key = match token {
            Some(t) => ViewKey::Token(t),
            None if keys.len() < VIEW_CACHE_MIN => return Arc::new(search::resolve(store, keys)),
            None => ViewKey::Keys {
                len: keys.len(),
                fingerprint: fingerprint(keys),
            },
        };
        {
            let mut cache = self.cache();
            if let Some(pos) = cache.iter().position(|c| c.key == key) {
                let entry = cache.remove(pos);
                if entry.generation == store.generation {
                    let rows = Arc::clone(&entry.rows);
                    cache.push(entry);
                    return rows;
                }
            }
        }
        // Resolved outside the lock: other views' queries need not wait for it.
        let rows = Arc::new(search::resolve(store, keys));
        let mut cache = self.cache();
        cache.retain(|c| c.key != key && c.generation == store.generation);
        if cache.len() >= VIEW_CACHE_ENTRIES {
            cache.remove(0);
        }
        cache.push(ViewCache {
            generation: store.generation,
            key,
            rows: Arc::clone(&rows),
        });
        rows
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, Vec<ViewCache>> {
        self.view_cache
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn check_query(&self, store: &Store, q: &[f32]) -> Result<()> {
        if q.is_empty() {
            return Err(Error::Empty("the query vector has no values"));
        }
        if !q.iter().all(|v| v.is_finite()) {
            return Err(Error::NonFinite {
                what: "query".into(),
            });
        }
        store.check_dim(q.len())
    }
}

impl SimilarityBackend for SklearnIndex {
    fn name(&self) -> &'static str {
        BACKEND
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            max_k: None,
            reverse: true,
            unbounded_k: true,
            enumerate: true,
            exact: true,
        }
    }

    fn metric(&self) -> Metric {
        self.metric
    }

    fn dim(&self) -> Result<Option<usize>> {
        Ok(self.read().dim)
    }

    fn upsert(&self, batch: &Embeddings) -> Result<()> {
        let mut store = self.write();
        if store.dropped {
            return Err(self.missing());
        }
        if let Some(dir) = &self.dir {
            if store.reserved > 0 && store.len() == 0 && !batch.is_empty() {
                let cap = std::mem::take(&mut store.reserved).max(batch.len());
                // The batch is checked (by `upsert`) only after this; a bad one leaves an
                // empty build file, which the next persist or cleanup handles.
                Builder::start(&mut store, dir, cap, batch.dim())?;
            }
        }
        store.upsert(batch)
    }

    /// On an empty file-backed index, the next upserts stream into the index file (see the
    /// `build` module): a bulk build never holds the rows in memory. Otherwise it makes room in
    /// memory.
    fn reserve(&self, additional: usize) -> Result<()> {
        let mut store = self.write();
        if store.dropped {
            return Err(self.missing());
        }
        if self.dir.is_some() && store.len() == 0 && store.build.is_none() {
            store.reserved = additional;
        } else if store.build.is_none() {
            store.reserve_memory(additional);
        }
        Ok(())
    }

    fn remove(&self, keys: &[String]) -> Result<usize> {
        let mut store = self.write();
        if store.dropped {
            return Err(self.missing());
        }
        Ok(store.remove(keys))
    }

    fn contains(&self, keys: &[String]) -> Result<Vec<bool>> {
        let store = self.read();
        Ok(keys.iter().map(|k| store.ids.row(k).is_some()).collect())
    }

    fn get(&self, keys: &[String]) -> Result<Embeddings> {
        let store = self.read();
        let rows: Vec<usize> = keys.iter().filter_map(|k| store.ids.row(k)).collect();
        store.select(&rows)
    }

    fn get_by_sample_ids(&self, sample_ids: &[String]) -> Result<Embeddings> {
        let store = self.read();
        // Group number of each asked sample (first occurrence wins).
        let mut group: HashMap<&str, usize> = HashMap::with_capacity(sample_ids.len());
        for s in sample_ids {
            let next = group.len();
            group.entry(s.as_str()).or_insert(next);
        }
        let mut groups: Vec<Vec<usize>> = vec![Vec::new(); group.len()];
        for r in 0..store.len() {
            if let Some(&g) = group.get(store.ids.sample_id(r)) {
                groups[g].push(r);
            }
        }
        let rows: Vec<usize> = groups.into_iter().flatten().collect();
        store.select(&rows)
    }

    fn get_all(&self) -> Result<Embeddings> {
        let store = self.read();
        let rows: Vec<usize> = (0..store.len()).collect();
        store.select(&rows)
    }

    fn keys(&self) -> Result<Vec<(String, String)>> {
        let store = self.read();
        Ok((0..store.len())
            .map(|r| {
                (
                    store.ids.key(r).to_string(),
                    store.ids.sample_id(r).to_string(),
                )
            })
            .collect())
    }

    /// The rows in place (the file's map, or memory) under the read lock.
    fn with_rows(&self, f: &mut dyn FnMut(BorrowedRows<'_>)) -> Result<bool> {
        let store = self.read();
        let (n, dim) = (store.len(), store.dim.unwrap_or(0));
        // A file being built maps room for more rows than it holds.
        let data = store.data.get(..n * dim).ok_or(Error::LengthMismatch {
            what: "sklearn rows",
            expected: n * dim,
            got: store.data.len(),
        })?;
        let key = |r: usize| store.ids.key(r);
        f(BorrowedRows::new(dim, n, data, &key)?);
        Ok(true)
    }

    fn size(&self) -> Result<usize> {
        Ok(self.read().len())
    }

    fn knn(&self, query: &KnnQuery<'_>) -> Result<Vec<Neighbor>> {
        let store = self.read();
        self.check_query(&store, query.vector)?;
        let rows = query
            .restrict
            .map(|keys| self.resolve(&store, keys, query.restrict_token));
        Ok(search::knn(
            &store,
            self.metric,
            query.vector,
            query.k,
            query.reverse,
            rows.as_ref().map(|r| r.as_slice()),
        ))
    }

    fn persist(&self) -> Result<()> {
        let Some(dir) = &self.dir else {
            return Ok(());
        };
        let mut persisted = self
            .persisted
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if self.read().build.is_some() {
            let mut store = self.write();
            let started = Instant::now();
            crate::build::finish(&mut store, self.metric)?;
            *persisted = store.generation;
            tracing::debug!(
                dir = %dir.display(),
                rows = store.len(),
                elapsed_ms = started.elapsed().as_secs_f64() * 1e3,
                "finished streaming build"
            );
            return Ok(());
        }
        let store = self.read();
        if store.dropped || store.generation == *persisted {
            return Ok(());
        }
        let started = Instant::now();
        storage::write(dir, self.metric, &store)?;
        *persisted = store.generation;
        tracing::debug!(
            dir = %dir.display(),
            rows = store.len(),
            elapsed_ms = started.elapsed().as_secs_f64() * 1e3,
            "persisted sklearn index"
        );
        Ok(())
    }

    fn cleanup(&self) -> Result<()> {
        let _persisting = self
            .persisted
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let mut store = self.write();
        store.clear();
        self.cache().clear();
        if let Some(dir) = &self.dir {
            storage::delete(dir)?;
        }
        Ok(())
    }

    fn persisted_config(&self) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("metric".into(), Value::String(self.metric.as_str().into()));
        m
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

#[cfg(test)]
mod tests {
    use simile_index::conformance::sample_batch;

    use super::*;

    fn cached(index: &SklearnIndex) -> Vec<(u64, bool)> {
        let generation = index.read().generation;
        index
            .cache()
            .iter()
            .filter_map(|c| match c.key {
                ViewKey::Token(t) => Some((t, c.generation == generation)),
                ViewKey::Keys { .. } => None,
            })
            .collect()
    }

    fn lent(index: &SklearnIndex) -> (Vec<String>, Vec<f32>) {
        let mut out = None;
        let lends = index
            .with_rows(&mut |rows| {
                let keys = (0..rows.len()).filter_map(|r| rows.key(r));
                out = Some((keys.map(String::from).collect(), rows.data().to_vec()));
            })
            .unwrap();
        assert!(lends);
        out.unwrap()
    }

    /// The rows are lent in index order while a streaming build's file has room for more rows,
    /// and from the map of the reopened file.
    #[test]
    fn rows_are_lent_during_a_build_and_from_the_map() {
        let dir = tempfile::tempdir().unwrap();
        let index = SklearnIndex::create(dir.path(), Metric::Cosine).unwrap();
        let batch = sample_batch(40, 3, 9);
        index.reserve(100).unwrap();
        index.upsert(&batch).unwrap();
        assert!(index.read().build.is_some(), "a streaming build");
        let want = (batch.keys().to_vec(), batch.data().to_vec());
        assert_eq!(lent(&index), want);
        index.persist().unwrap();
        let opened = SklearnIndex::open(dir.path()).unwrap();
        assert!(opened.read().data.is_mapped() || cfg!(target_endian = "big"));
        assert_eq!(lent(&opened), want);
        let empty = SklearnIndex::in_memory(Metric::Cosine);
        assert_eq!(lent(&empty), (Vec::new(), Vec::new()));
    }

    /// A token's rows are resolved once per store generation and reused until a change; at most
    /// `VIEW_CACHE_ENTRIES` restrictions are kept, the least recently used dropped first.
    #[test]
    fn token_rows_are_reused_until_the_index_changes() {
        let index = SklearnIndex::in_memory(Metric::Cosine);
        let batch = sample_batch(50, 3, 5);
        index.upsert(&batch).unwrap();
        let view: Vec<String> = batch.keys().iter().step_by(2).cloned().collect();
        let q = batch.row(1).to_vec();
        let ask = |token: u64| {
            index
                .knn(&KnnQuery {
                    vector: &q,
                    k: Some(3),
                    reverse: false,
                    restrict: Some(&view),
                    restrict_token: Some(token),
                })
                .unwrap()
        };
        let first = ask(1);
        let rows = Arc::clone(&index.cache()[0].rows);
        assert_eq!(ask(1), first);
        assert!(Arc::ptr_eq(&rows, &index.cache()[0].rows), "reused");
        assert_eq!(cached(&index), [(1, true)]);
        index.remove(&[first[0].key.clone()]).unwrap();
        assert_eq!(cached(&index), [(1, false)], "stale after a change");
        let after = ask(1);
        assert!(after.iter().all(|h| h.key != first[0].key));
        assert_eq!(cached(&index), [(1, true)]);
        assert_eq!(index.cache()[0].rows.len(), view.len() - 1);
        for t in 2..=5 {
            ask(t);
        }
        assert_eq!(cached(&index), [(2, true), (3, true), (4, true), (5, true)]);
        ask(3);
        assert_eq!(cached(&index), [(2, true), (4, true), (5, true), (3, true)]);
    }
}
