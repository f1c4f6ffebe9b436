//! [`MilvusIndex`]: one Milvus collection as a similarity index.
//!
//! This file holds the handle, its public methods and the `SimilarityBackend` contract, each
//! method handing the work to the module whose job it is:
//!
//! | module | job |
//! |---|---|
//! | `call` | running SDK requests on the crate's runtime, mapping their errors; reads retried after a reload |
//! | `consistency` | the consistency level of the next read (Strong after a delete) |
//! | `schema` | FiftyOne's collection schema: binding a name, creating, adopting, loading, dropping |
//! | `owner` | which collections simile created (their description names the storage directory) |
//! | `private` | fast path: plain inserts into a collection no one else can know (`PrivateWrites`) |
//! | `sample_keys` | fast path: sample indexes read sample ids from the primary key (`SampleKeys`) |
//! | `write` | upserts in parallel batches, deletes |
//! | `read` | rows by key, by sample id, full scans, `count(*)` |
//! | `search` | `knn`: ANN searches (nearest or farthest first) and exact scans |
//! | `view` | searches restricted to a view: over-fetch or batched filters |
// The SDK's builders return its own (large) error type; `MilvusIndex::request` and
// `MilvusIndex::read` map it at once, so it is never carried far.
#![allow(clippy::result_large_err)]
mod call;
mod consistency;
mod owner;
mod private;
mod read;
mod sample_keys;
mod schema;
mod search;
mod view;
mod write;

use std::any::Any;
use std::collections::HashSet;
use std::fmt;
use std::sync::Mutex;

use milvus::v2::prelude::{DescribeIndexRequest, FlushRequest};
use milvus::v2::ClientV2;
use serde_json::{Map, Value};
use simile_index::{
    BackendParams, Capabilities, Embeddings, Error, KnnQuery, Metric, Neighbor, Result,
    SimilarityBackend,
};

use crate::config::{consistency_name, redact_uri, IndexKind, MilvusConfig, MAX_K};
use crate::conn::client_for;
use crate::BACKEND;
use consistency::ReadConsistency;
use private::PrivateWrites;
use sample_keys::SampleKeys;

pub use owner::{owner_of, OwnedCollection, OWNER_PREFIX};

/// Most keys put into one `pk in [...]` filter (view restrictions, gets, deletes).
pub const RESTRICT_BATCH: usize = 4096;

/// What this handle knows of its collection.
#[derive(Debug, Default)]
struct State {
    /// The collection exists on the server (as far as this handle knows).
    exists: bool,
    dim: Option<usize>,
    /// This handle created the collection (it did not exist when the handle bound it).
    created: bool,
}

/// A similarity index stored in one Milvus collection.
///
/// Reach the SDK client with [`MilvusIndex::client`] (downcast a `dyn SimilarityBackend` with
/// `as_any().downcast_ref::<MilvusIndex>()`).
pub struct MilvusIndex {
    client: ClientV2,
    cfg: MilvusConfig,
    collection: String,
    metric: Metric,
    state: Mutex<State>,
    /// The consistency level of each read.
    reads: ReadConsistency,
    /// Whether reads may take sample ids from primary keys.
    sample_keys: SampleKeys,
    /// Whether writes may send keys this handle never wrote as plain inserts.
    private: PrivateWrites,
    /// The collection name was generated here (not given by the user).
    auto_named: bool,
    /// The storage directory the facade reserved for this index: a collection created here
    /// names it in its description (see `owner`).
    storage_dir: std::path::PathBuf,
}

impl fmt::Debug for MilvusIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = &self.cfg.connection;
        f.debug_struct("MilvusIndex")
            .field("uri", &redact_uri(&c.uri))
            .field("user", &c.user)
            .field("db_name", &c.db_name)
            .field("collection", &self.collection)
            .field("metric", &self.metric)
            .field(
                "consistency_level",
                &consistency_name(self.cfg.consistency_level),
            )
            .field("index_type", &self.cfg.index_kind.as_str())
            .finish_non_exhaustive()
    }
}

impl MilvusIndex {
    /// Connects (sharing the client of the same uri/credentials/db) and binds the collection:
    /// an existing `collection_name` is checked and loaded, otherwise the collection is created
    /// at the first upsert. With no `collection_name` a unique `fiftyone_<dataset>_<random>`
    /// name is chosen.
    pub fn connect(params: &BackendParams) -> Result<MilvusIndex> {
        let cfg = MilvusConfig::from_params(params)?;
        let client = client_for(&cfg.connection)?;
        let mut index = MilvusIndex {
            client,
            collection: String::new(),
            metric: cfg.metric.unwrap_or(Metric::DotProduct),
            reads: ReadConsistency::new(cfg.consistency_level),
            cfg,
            state: Mutex::new(State::default()),
            sample_keys: SampleKeys::new(params.patches),
            private: PrivateWrites::ended(),
            auto_named: false,
            storage_dir: params.storage_dir.clone(),
        };
        index.bind(&params.dataset_name)?;
        tracing::debug!(collection = %index.collection, metric = %index.metric, "milvus index bound");
        Ok(index)
    }

    /// The SDK client (shared with every index of the same connection).
    ///
    /// Writes through it are seen by this handle: from here on its writes are all upserts.
    pub fn client(&self) -> &ClientV2 {
        self.private.end();
        &self.client
    }

    /// The Milvus collection name (the spec's `collection` property).
    pub fn collection_name(&self) -> &str {
        self.private.end();
        &self.collection
    }

    /// Seals the collection's growing segments (Milvus `flush`), after which the server builds
    /// the vector index on them in the background (see [`MilvusIndex::wait_indexed`]).
    pub fn flush(&self) -> Result<()> {
        if !self.lock().exists {
            return Ok(());
        }
        let req = FlushRequest::builder()
            .collection_names([self.collection.clone()])
            .build();
        self.request("flush", req, |client, req| async move {
            client.flush(req).await.map(|_| ())
        })
    }

    /// Waits until the server reports at least `rows` rows covered by the vector index (sealed
    /// and indexed), polling every 500 ms; returns the indexed row count, or
    /// [`Error::Backend`] after `timeout`.
    pub fn wait_indexed(&self, rows: usize, timeout: std::time::Duration) -> Result<usize> {
        let start = std::time::Instant::now();
        loop {
            let indexed = self.request(
                "describe_index",
                self.describe_index_request(),
                |client, req: DescribeIndexRequest| async move {
                    client.describe_index(req).await.map(|r| {
                        r.indexes()
                            .iter()
                            .map(|i| i.get_indexed_rows().max(0) as usize)
                            .sum::<usize>()
                    })
                },
            )?;
            if indexed >= rows {
                return Ok(indexed);
            }
            if start.elapsed() > timeout {
                return Err(Error::Backend {
                    backend: BACKEND,
                    op: "wait_indexed",
                    source: format!(
                        "{indexed} of {rows} rows indexed after {timeout:?} in collection '{}'",
                        self.collection
                    )
                    .into(),
                });
            }
            std::thread::sleep(std::time::Duration::from_millis(500));
        }
    }

    /// Whether the next writes may use plain inserts for keys this handle never wrote (the
    /// collection is new, randomly named, and its name has not left this handle).
    pub fn is_private(&self) -> bool {
        self.private.is_active()
    }

    /// Whether the collection exists (it is created lazily at the first upsert).
    pub fn collection_exists(&self) -> Result<bool> {
        let exists = self.has_collection(&self.collection)?;
        self.lock().exists = exists;
        Ok(exists)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn dim_or_zero(&self) -> usize {
        self.lock().dim.unwrap_or(0)
    }
}

/// `keys` without repeats, first occurrence kept, in order.
fn dedup_keys(keys: &[String]) -> Vec<String> {
    let mut seen = HashSet::with_capacity(keys.len());
    keys.iter()
        .filter(|k| seen.insert(k.as_str()))
        .cloned()
        .collect()
}

impl SimilarityBackend for MilvusIndex {
    fn name(&self) -> &'static str {
        BACKEND
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            max_k: Some(MAX_K),
            reverse: true,
            unbounded_k: true,
            enumerate: true,
            exact: self.cfg.index_kind == IndexKind::Flat,
        }
    }

    fn metric(&self) -> Metric {
        self.metric
    }

    fn dim(&self) -> Result<Option<usize>> {
        Ok(self.lock().dim)
    }

    fn upsert(&self, batch: &Embeddings) -> Result<()> {
        self.write_rows(batch)
    }

    fn remove(&self, keys: &[String]) -> Result<usize> {
        self.delete_keys(keys)
    }

    fn contains(&self, keys: &[String]) -> Result<Vec<bool>> {
        let found = self.fetch(keys, false)?;
        Ok(keys.iter().map(|k| found.contains_key(k)).collect())
    }

    fn get(&self, keys: &[String]) -> Result<Embeddings> {
        self.read_keys(keys)
    }

    fn get_by_sample_ids(&self, sample_ids: &[String]) -> Result<Embeddings> {
        self.read_sample_ids(sample_ids)
    }

    fn get_all(&self) -> Result<Embeddings> {
        let rows = self.scan_all(true)?;
        self.rows_to_embeddings(rows)
    }

    fn keys(&self) -> Result<Vec<(String, String)>> {
        let rows = self.scan_all(false)?;
        Ok(rows.pks.into_iter().zip(rows.sample_ids).collect())
    }

    fn size(&self) -> Result<usize> {
        self.count()
    }

    fn knn(&self, query: &KnnQuery<'_>) -> Result<Vec<Neighbor>> {
        self.nearest(query)
    }

    fn persist(&self) -> Result<()> {
        if !self.cfg.flush_on_persist {
            return Ok(());
        }
        self.flush()
    }

    fn cleanup(&self) -> Result<()> {
        self.drop_collection()
    }

    fn created_storage(&self) -> bool {
        self.lock().created
    }

    fn persisted_config(&self) -> Map<String, Value> {
        // The name goes into a run record: other handles may write from now on.
        self.private.end();
        self.cfg.persisted(&self.collection, self.metric)
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}
