//! [`MilvusIndex`]: one Milvus collection as a similarity index.
use std::any::Any;
use std::collections::hash_map::RandomState;
use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt;
use std::future::Future;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;

use milvus::v2::error::Error as SdkError;
use milvus::v2::prelude::{
    CollectionSchema, ConsistencyLevel, CreateCollectionRequest, CreateIndexRequest, DataType,
    DeleteRequest, DescribeCollectionRequest, DescribeIndexRequest, DropCollectionRequest,
    FieldData, FieldSchema, FlushRequest, HasCollectionRequest, Ids, IndexParam, IndexType,
    InsertRequest, LoadCollectionRequest, MetricType, QueryRequest, SearchRequest, SearchVectors,
    UpsertRequest,
};
use milvus::v2::ClientV2;
use serde_json::{Map, Value};
use simile_index::{
    sort_neighbors, BackendParams, Capabilities, Embeddings, Error, KnnQuery, Metric, Neighbor,
    Result, SimilarityBackend,
};

use crate::config::{
    collection_prefix, consistency_name, redact_uri, IndexKind, MilvusConfig, MAX_K,
};
use crate::conn::{classify, client_for, map_error, runtime_error, Kind};
use crate::expr::{in_filter, string_literal};
use crate::runtime::block_on;
use crate::{MilvusError, BACKEND};

/// Most keys put into one `pk in [...]` filter (view restrictions, gets, deletes).
pub const RESTRICT_BATCH: usize = 4096;
/// Views up to this many keys go straight into one filter expression.
const SMALL_VIEW: usize = 512;
/// Keep each response under tonic's default 4 MiB decoding limit.
const RESPONSE_BUDGET_BYTES: usize = 3 << 20;
/// Index build and load can take minutes on large collections.
const LOAD_TIMEOUT_MS: i64 = 30 * 60 * 1000;

const PK: &str = "pk";
const VECTOR: &str = "vector";
const SAMPLE_ID: &str = "sample_id";
const MAX_VARCHAR: u32 = 64000;

#[derive(Debug)]
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
    /// Deletes sent by this handle, and the newest of them a Strong read has covered (see
    /// [`MilvusIndex::read_level`]).
    deletes: AtomicU64,
    deletes_covered: AtomicU64,
    /// A sample index: every row's `sample_id` equals its `pk` (FiftyOne's schema), so reads
    /// take the sample id from the primary key instead of fetching the field (a search without
    /// output fields skips Milvus' second retrieve phase). Cleared for good when this handle
    /// writes a row whose sample id differs from its key.
    pk_is_sample_id: AtomicBool,
    /// While this handle is the only possible writer of its collection, the keys it may have
    /// written (see [`MilvusIndex::upsert`]): `Some` from the moment it created a collection
    /// under a name it chose at random, until that name leaves the handle (`collection_name()`,
    /// `client()`, `persisted_config()`), a write fails, or the set grows past
    /// [`PRIVATE_KEYS_MAX`].
    private_keys: Mutex<Option<HashSet<String>>>,
    /// The collection name was generated here (not given by the user).
    auto_named: bool,
}

/// Largest key set kept for the insert fast path (a few hundred MB at most).
const PRIVATE_KEYS_MAX: usize = 2_000_000;

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

fn metric_type(m: Metric) -> MetricType {
    match m {
        Metric::Cosine => MetricType::Cosine,
        Metric::DotProduct => MetricType::Ip,
        Metric::Euclidean => MetricType::L2,
    }
}

fn metric_of(t: MetricType) -> Option<Metric> {
    match t {
        MetricType::Cosine => Some(Metric::Cosine),
        MetricType::Ip => Some(Metric::DotProduct),
        MetricType::L2 => Some(Metric::Euclidean),
        _ => None,
    }
}

/// A Milvus score converted to the contract's distance (smaller is closer).
fn distance_of(metric: Metric, score: f32) -> f32 {
    match metric {
        Metric::Cosine => 1.0 - score,
        Metric::DotProduct => -score,
        Metric::Euclidean => score.max(0.0).sqrt(),
    }
}

fn malformed(op: &'static str, what: impl Into<String>) -> Error {
    Error::Backend {
        backend: BACKEND,
        op,
        source: Box::new(MilvusError::Malformed(what.into())),
    }
}

/// Rows read back from a query.
#[derive(Debug, Default)]
struct Rows {
    pks: Vec<String>,
    sample_ids: Vec<String>,
    vectors: Vec<Vec<f32>>,
}

fn random_suffix() -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut h = RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default(),
    );
    h.write_u32(std::process::id());
    let mut x = h.finish();
    (0..6)
        .map(|_| {
            let c = ALPHABET[(x % ALPHABET.len() as u64) as usize] as char;
            x /= ALPHABET.len() as u64;
            c
        })
        .collect()
}

fn dedup_keys(keys: &[String]) -> Vec<String> {
    let mut seen = HashSet::with_capacity(keys.len());
    keys.iter()
        .filter(|k| seen.insert(k.as_str()))
        .cloned()
        .collect()
}

/// What a search request is built from.
struct SearchSpec<'a> {
    collection: &'a str,
    metric: Metric,
    index_kind: IndexKind,
    search_ef: u32,
    level: ConsistencyLevel,
    /// Ask for the `sample_id` field (patch indexes; sample indexes read it from the pk).
    with_sample_id: bool,
}

impl SearchSpec<'_> {
    /// The search request: metric, output `sample_id`, consistency level, and for HNSW the
    /// search parameter `ef` (at least `limit`), sent as the request's `params`.
    #[allow(clippy::result_large_err)] // the SDK's own error type, mapped by the caller
    fn request(
        &self,
        vector: Vec<f32>,
        limit: usize,
        filter: Option<String>,
    ) -> std::result::Result<SearchRequest, SdkError> {
        let mut b = SearchRequest::builder()
            .collection_name(self.collection)
            .vector_field(VECTOR)
            .vectors(SearchVectors::Float(vec![vector]))
            .limit(limit as i64)
            .metric_type(metric_type(self.metric))
            .consistency_level(self.level);
        if self.with_sample_id {
            b = b.output_fields([SAMPLE_ID]);
        }
        if self.index_kind == IndexKind::Hnsw {
            let ef = (self.search_ef as usize).max(limit);
            b = b.extra_params(HashMap::from([("ef".to_string(), ef.to_string())]));
        }
        if let Some(f) = filter {
            b = b.filter(f);
        }
        b.build()
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
            cfg,
            state: Mutex::new(State {
                exists: false,
                dim: None,
                created: false,
            }),
            deletes: AtomicU64::new(0),
            deletes_covered: AtomicU64::new(0),
            pk_is_sample_id: AtomicBool::new(!params.patches),
            private_keys: Mutex::new(None),
            auto_named: false,
        };
        match index.cfg.collection_name.clone() {
            Some(name) => {
                index.collection = name;
                if index.has_collection(&index.collection)? {
                    index.adopt_existing()?;
                }
            }
            None => {
                let prefix = collection_prefix(&params.dataset_name);
                let mut name = format!("{prefix}_{}", random_suffix());
                while index.has_collection(&name)? {
                    name = format!("{prefix}_{}", random_suffix());
                }
                index.collection = name;
                index.auto_named = true;
            }
        }
        tracing::debug!(collection = %index.collection, metric = %index.metric, "milvus index bound");
        Ok(index)
    }

    /// The SDK client (shared with every index of the same connection).
    ///
    /// Writes through it are seen by this handle: from here on its writes are all upserts.
    pub fn client(&self) -> &ClientV2 {
        self.end_private();
        &self.client
    }

    /// The Milvus collection name (the spec's `collection` property).
    pub fn collection_name(&self) -> &str {
        self.end_private();
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
            .build()
            .map_err(|e| self.map_err("flush", e))?;
        let client = self.client.clone();
        self.call("flush", async move { client.flush(req).await.map(|_| ()) })
    }

    /// The request describing the collection's vector index.
    fn describe_index_request(&self) -> Result<DescribeIndexRequest> {
        DescribeIndexRequest::builder()
            .collection_name(self.collection.clone())
            .field_name(VECTOR)
            .build()
            .map_err(|e| self.map_err("describe_index", e))
    }

    /// Waits until the server reports at least `rows` rows covered by the vector index (sealed
    /// and indexed), polling every 500 ms; returns the indexed row count, or
    /// [`Error::Backend`] after `timeout`.
    pub fn wait_indexed(&self, rows: usize, timeout: std::time::Duration) -> Result<usize> {
        let start = std::time::Instant::now();
        loop {
            let req = self.describe_index_request()?;
            let client = self.client.clone();
            let indexed = self.call("describe_index", async move {
                client.describe_index(req).await.map(|r| {
                    r.indexes()
                        .iter()
                        .map(|i| i.get_indexed_rows().max(0) as usize)
                        .sum::<usize>()
                })
            })?;
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
        self.private().is_some()
    }

    fn private(&self) -> std::sync::MutexGuard<'_, Option<HashSet<String>>> {
        self.private_keys.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn pk_is_sample_id(&self) -> bool {
        self.pk_is_sample_id.load(Ordering::SeqCst)
    }

    /// Someone else may write to the collection from now on: upserts only.
    fn end_private(&self) {
        self.private().take();
    }

    /// Whether the collection exists (it is created lazily at the first upsert).
    pub fn collection_exists(&self) -> Result<bool> {
        let exists = self.has_collection(&self.collection)?;
        self.lock().exists = exists;
        Ok(exists)
    }

    /// The consistency level of the next read. Milvus 2.3 returns no usable timestamp for
    /// deletes, so the SDK's Session guarantee does not cover them: after a delete, reads are
    /// Strong until one has succeeded (one time tick), then Session again.
    fn read_level(&self) -> (ConsistencyLevel, u64) {
        let generation = self.deletes.load(Ordering::SeqCst);
        if self.cfg.consistency_level == ConsistencyLevel::Session
            && self.deletes_covered.load(Ordering::SeqCst) < generation
        {
            (ConsistencyLevel::Strong, generation)
        } else {
            (self.cfg.consistency_level, generation)
        }
    }

    fn read_done(&self, generation: u64) {
        self.deletes_covered.fetch_max(generation, Ordering::SeqCst);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs an SDK future on the crate runtime, mapping errors.
    fn call<F, T>(&self, op: &'static str, fut: F) -> Result<T>
    where
        F: Future<Output = std::result::Result<T, SdkError>> + Send + 'static,
        T: Send + 'static,
    {
        match block_on(fut) {
            Err(e) => Err(runtime_error(op, &self.cfg.connection.uri, e)),
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(self.map_err(op, e)),
        }
    }

    /// Like [`Self::call`] for reads: a collection that is not loaded (after a server restart,
    /// or released by someone) is loaded and the read retried once.
    fn read_call<F, Fut, T>(&self, op: &'static str, make: F) -> Result<T>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = std::result::Result<T, SdkError>> + Send + 'static,
        T: Send + 'static,
    {
        match block_on(make()) {
            Err(e) => Err(runtime_error(op, &self.cfg.connection.uri, e)),
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) if classify(&e) == Kind::NotLoaded => {
                tracing::info!(collection = %self.collection, "collection not loaded (server restart?): loading it and retrying");
                self.load()?;
                self.call(op, make())
            }
            Ok(Err(e)) => Err(self.map_err(op, e)),
        }
    }

    fn map_err(&self, op: &'static str, e: SdkError) -> Error {
        if classify(&e) == Kind::CollectionMissing {
            let mut st = self.lock();
            st.exists = false;
            return Error::IndexMissing {
                backend: BACKEND,
                name: self.collection.clone(),
            };
        }
        map_error(op, &self.cfg.connection.uri, e)
    }

    fn has_collection(&self, name: &str) -> Result<bool> {
        let req = HasCollectionRequest::builder()
            .collection_name(name)
            .build()
            .map_err(|e| self.map_err("has_collection", e))?;
        let client = self.client.clone();
        self.call("has_collection", async move {
            client.has_collection(req).await.map(|r| r.exists())
        })
    }

    /// Checks an existing collection's schema, reads its dim and metric, builds a missing index
    /// and loads it.
    fn adopt_existing(&mut self) -> Result<()> {
        let req = DescribeCollectionRequest::builder()
            .collection_name(self.collection.clone())
            .build()
            .map_err(|e| self.map_err("describe_collection", e))?;
        let client = self.client.clone();
        let desc = self.call("describe_collection", async move {
            client.describe_collection(req).await
        })?;
        let schema = desc.description().get_schema();
        let field = |name: &str| schema.get_fields().iter().find(|f| f.get_name() == name);
        let bad_schema = |reason: String| {
            Error::InvalidParam {
            backend: BACKEND,
            param: "collection_name".into(),
            reason: format!(
                "collection '{}' does not have FiftyOne's schema (pk VARCHAR primary, vector FLOAT_VECTOR, sample_id VARCHAR): {reason}",
                self.collection
            ),
        }
        };
        match field(PK) {
            Some(f) if f.is_primary_key() && f.get_data_type() == DataType::VarChar => {}
            _ => return Err(bad_schema("no VARCHAR primary key 'pk'".into())),
        }
        let dim = match field(VECTOR) {
            Some(f) if f.get_data_type() == DataType::FloatVector => f.get_dimension() as usize,
            _ => return Err(bad_schema("no FLOAT_VECTOR field 'vector'".into())),
        };
        match field(SAMPLE_ID) {
            Some(f) if f.get_data_type() == DataType::VarChar => {}
            _ => return Err(bad_schema("no VARCHAR field 'sample_id'".into())),
        }
        {
            let mut st = self.lock();
            st.exists = true;
            st.dim = Some(dim);
        }
        // The metric is the collection's index metric.
        let req = self.describe_index_request()?;
        let client = self.client.clone();
        let indexes = block_on(async move { client.describe_index(req).await })
            .map_err(|e| runtime_error("describe_index", &self.cfg.connection.uri, e))?;
        let existing_metric = match indexes {
            Ok(resp) => resp
                .indexes()
                .iter()
                .find_map(|i| metric_of(i.get_metric_type())),
            Err(e) => match classify(&e) {
                Kind::Unauthenticated | Kind::Unavailable => {
                    return Err(self.map_err("describe_index", e))
                }
                // "index not found": built below.
                _ => None,
            },
        };
        match (existing_metric, self.cfg.metric) {
            (Some(have), Some(want)) if have != want => {
                return Err(Error::InvalidParam {
                    backend: BACKEND,
                    param: "metric".into(),
                    reason: format!(
                        "collection '{}' is indexed with {have}, not {want}",
                        self.collection
                    ),
                })
            }
            (Some(have), _) => self.metric = have,
            (None, _) => self.create_vector_index()?,
        }
        self.load()
    }

    fn index_param(&self) -> IndexParam {
        let p = IndexParam::new()
            .field_name(VECTOR)
            .metric_type(metric_type(self.metric));
        match self.cfg.index_kind {
            IndexKind::Flat => p.index_type(IndexType::Flat),
            IndexKind::Hnsw => p.index_type(IndexType::Hnsw).extra_params(HashMap::from([
                ("M".to_string(), self.cfg.hnsw_m.to_string()),
                (
                    "efConstruction".to_string(),
                    self.cfg.hnsw_ef_construction.to_string(),
                ),
            ])),
        }
    }

    fn create_vector_index(&self) -> Result<()> {
        let req = CreateIndexRequest::builder()
            .collection_name(self.collection.clone())
            .index_param(self.index_param())
            .sync(true)
            .timeout_ms(LOAD_TIMEOUT_MS)
            .build()
            .map_err(|e| self.map_err("create_index", e))?;
        let client = self.client.clone();
        self.call(
            "create_index",
            async move { client.create_index(req).await },
        )
    }

    fn load(&self) -> Result<()> {
        let req = LoadCollectionRequest::builder()
            .collection_name(self.collection.clone())
            .sync(true)
            .timeout_ms(LOAD_TIMEOUT_MS)
            .build()
            .map_err(|e| self.map_err("load_collection", e))?;
        let client = self.client.clone();
        self.call("load_collection", async move {
            client.load_collection(req).await
        })
    }

    /// Creates the collection (FiftyOne's schema), its index, and loads it.
    fn create_collection(&self, dim: usize) -> Result<()> {
        let schema = CollectionSchema::new()
            .enable_dynamic_field(false)
            .add_field(
                FieldSchema::new()
                    .name(PK)
                    .data_type(DataType::VarChar)
                    .primary_key(true)
                    .auto_id(false)
                    .max_length(MAX_VARCHAR),
            )
            .add_field(
                FieldSchema::new()
                    .name(VECTOR)
                    .data_type(DataType::FloatVector)
                    .dimension(dim as u32),
            )
            .add_field(
                FieldSchema::new()
                    .name(SAMPLE_ID)
                    .data_type(DataType::VarChar)
                    .max_length(MAX_VARCHAR),
            );
        let req = CreateCollectionRequest::builder()
            .collection_name(self.collection.clone())
            .schema(schema)
            .consistency_level(self.cfg.consistency_level)
            .build()
            .map_err(|e| self.map_err("create_collection", e))?;
        let client = self.client.clone();
        tracing::info!(collection = %self.collection, dim, metric = %self.metric, "creating Milvus collection");
        self.call("create_collection", async move {
            client.create_collection(req).await
        })?;
        self.create_vector_index()?;
        self.load()
    }

    /// Makes sure the collection exists with vectors of `dim`.
    fn ensure_collection(&self, dim: usize) -> Result<()> {
        let (exists, known) = {
            let st = self.lock();
            (st.exists, st.dim)
        };
        if let Some(expected) = known {
            if expected != dim {
                return Err(Error::DimensionMismatch { expected, got: dim });
            }
        }
        if exists {
            return Ok(());
        }
        if self.has_collection(&self.collection)? {
            // Created by someone else (or dropped and recreated): adopt it.
            let mut probe = MilvusIndex {
                client: self.client.clone(),
                cfg: self.cfg.clone(),
                collection: self.collection.clone(),
                metric: self.metric,
                state: Mutex::new(State {
                    exists: false,
                    dim: None,
                    created: false,
                }),
                deletes: AtomicU64::new(0),
                deletes_covered: AtomicU64::new(0),
                pk_is_sample_id: AtomicBool::new(self.pk_is_sample_id()),
                private_keys: Mutex::new(None),
                auto_named: false,
            };
            probe.adopt_existing()?;
            let got = probe.lock().dim;
            let mut st = self.lock();
            st.exists = true;
            st.dim = got;
            if let Some(expected) = got {
                if expected != dim {
                    return Err(Error::DimensionMismatch { expected, got: dim });
                }
            }
            return Ok(());
        }
        self.create_collection(dim)?;
        if self.auto_named {
            *self.private() = Some(HashSet::new());
        }
        let mut st = self.lock();
        st.exists = true;
        st.dim = Some(dim);
        st.created = true;
        Ok(())
    }

    /// Rows of `fields` matching `filter` (at most `limit`).
    fn query_rows(
        &self,
        op: &'static str,
        filter: String,
        fields: &[&str],
        limit: Option<i64>,
    ) -> Result<Rows> {
        let (level, generation) = self.read_level();
        let sample_from_pk = self.pk_is_sample_id();
        let requested: Vec<String> = fields
            .iter()
            .filter(|f| !(sample_from_pk && **f == SAMPLE_ID))
            .map(|s| s.to_string())
            .collect();
        let mut b = QueryRequest::builder()
            .collection_name(self.collection.clone())
            .filter(filter)
            .output_fields(requested)
            .consistency_level(level);
        if let Some(l) = limit {
            b = b.limit(l);
        }
        let req = b.build().map_err(|e| self.map_err(op, e))?;
        let client = self.client.clone();
        let want_sample = fields.contains(&SAMPLE_ID);
        let want_vector = fields.contains(&VECTOR);
        let rows = self.read_call(op, || {
            let client = client.clone();
            let req = req.clone();
            async move {
                let resp = client.query(req).await?;
                let r = resp.results();
                let col = |name: &str| r.get_output_field(name);
                let pks = col(PK).and_then(|f| f.as_varchar()).map(|v| v.to_vec());
                let sample_ids = if want_sample && sample_from_pk {
                    pks.clone()
                } else if want_sample {
                    col(SAMPLE_ID)
                        .and_then(|f| f.as_varchar())
                        .map(|v| v.to_vec())
                } else {
                    Some(Vec::new())
                };
                let vectors = if want_vector {
                    col(VECTOR)
                        .and_then(|f| f.as_float_vectors())
                        .map(|v| v.to_vec())
                } else {
                    Some(Vec::new())
                };
                Ok((pks, sample_ids, vectors, r.get_row_count()))
            }
        })?;
        self.read_done(generation);
        match rows {
            (Some(pks), Some(sample_ids), Some(vectors), _) => Ok(Rows {
                pks,
                sample_ids,
                vectors,
            }),
            (_, _, _, 0) => Ok(Rows::default()),
            _ => Err(malformed(op, "query response lacks the requested fields")),
        }
    }

    /// How many rows with vectors fit in one response.
    fn rows_per_response(&self) -> usize {
        let dim = self.lock().dim.unwrap_or(512);
        (RESPONSE_BUDGET_BYTES / (dim * 4 + 128)).clamp(1, self.cfg.batch_size.min(RESTRICT_BATCH))
    }

    /// The stored rows of `keys` (absent keys skipped), as a map.
    fn fetch(
        &self,
        keys: &[String],
        with_vectors: bool,
    ) -> Result<HashMap<String, (String, Vec<f32>)>> {
        let mut out = HashMap::with_capacity(keys.len());
        if keys.is_empty() || !self.lock().exists {
            return Ok(out);
        }
        let keys = dedup_keys(keys);
        let per = if with_vectors {
            self.rows_per_response()
        } else {
            RESTRICT_BATCH
        };
        let fields: &[&str] = if with_vectors {
            &[PK, SAMPLE_ID, VECTOR]
        } else {
            &[PK, SAMPLE_ID]
        };
        for chunk in keys.chunks(per) {
            let rows = self.query_rows("get", in_filter(PK, chunk), fields, None)?;
            let n = rows.pks.len();
            let mut vectors = rows.vectors.into_iter();
            for (i, (pk, sid)) in rows.pks.into_iter().zip(rows.sample_ids).enumerate() {
                let v = if with_vectors {
                    vectors
                        .next()
                        .ok_or_else(|| malformed("get", format!("{n} keys but {i} vectors")))?
                } else {
                    Vec::new()
                };
                out.insert(pk, (sid, v));
            }
        }
        Ok(out)
    }

    fn dim_or_zero(&self) -> usize {
        self.lock().dim.unwrap_or(0)
    }

    /// Every row (pk order), paging with `pk > last`.
    fn scan_all(&self, with_vectors: bool) -> Result<Rows> {
        let mut all = Rows::default();
        if !self.lock().exists {
            return Ok(all);
        }
        let page = if with_vectors {
            self.rows_per_response()
        } else {
            16384.min(RESTRICT_BATCH * 4)
        };
        let fields: &[&str] = if with_vectors {
            &[PK, SAMPLE_ID, VECTOR]
        } else {
            &[PK, SAMPLE_ID]
        };
        let mut last: Option<String> = None;
        loop {
            let filter = match &last {
                None => format!("{PK} >= \"\""),
                Some(l) => format!("{PK} > {}", string_literal(l)),
            };
            let rows = self.query_rows("scan", filter, fields, Some(page as i64))?;
            let n = rows.pks.len();
            if n == 0 {
                break;
            }
            let mut order: Vec<usize> = (0..n).collect();
            order.sort_by(|a, b| rows.pks[*a].cmp(&rows.pks[*b]));
            last = order.last().map(|i| rows.pks[*i].clone());
            for i in order {
                all.pks.push(rows.pks[i].clone());
                all.sample_ids.push(rows.sample_ids[i].clone());
                if with_vectors {
                    let v = rows
                        .vectors
                        .get(i)
                        .ok_or_else(|| malformed("scan", "fewer vectors than keys"))?;
                    all.vectors.push(v.clone());
                }
            }
            if n < page {
                break;
            }
        }
        Ok(all)
    }

    fn rows_to_embeddings(&self, rows: Rows) -> Result<Embeddings> {
        let dim = self.dim_or_zero();
        if rows.pks.is_empty() {
            return Ok(Embeddings::empty(dim));
        }
        let mut data = Vec::with_capacity(rows.pks.len() * dim);
        for v in &rows.vectors {
            if v.len() != dim {
                return Err(malformed(
                    "get",
                    format!("a stored vector has {} values, not {dim}", v.len()),
                ));
            }
            data.extend_from_slice(v);
        }
        Embeddings::new(dim, data, rows.pks, rows.sample_ids)
    }

    /// One ANN search; hits as neighbours with contract distances.
    fn search(
        &self,
        vector: Vec<f32>,
        limit: usize,
        filter: Option<String>,
        negate: bool,
    ) -> Result<Vec<Neighbor>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let (level, generation) = self.read_level();
        let spec = SearchSpec {
            collection: &self.collection,
            metric: self.metric,
            index_kind: self.cfg.index_kind,
            search_ef: self.cfg.search_ef,
            level,
            with_sample_id: !self.pk_is_sample_id(),
        };
        let req = spec
            .request(vector, limit, filter)
            .map_err(|e| self.map_err("search", e))?;
        let client = self.client.clone();
        let sample_from_pk = self.pk_is_sample_id();
        let hits = self.read_call("search", || {
            let client = client.clone();
            let req = req.clone();
            async move {
                let resp = client.search(req).await?;
                let mut out = Vec::new();
                for one in resp.results().iter() {
                    let ids = match one.get_ids() {
                        Ids::VarChar(v) => v.clone(),
                        Ids::Int64(v) => v.iter().map(|i| i.to_string()).collect(),
                        _ => {
                            return Err(SdkError::MalformedResponse(
                                "unsupported primary key type".into(),
                            ))
                        }
                    };
                    let scores = one.get_scores().to_vec();
                    let sids = if sample_from_pk {
                        Some(ids.clone())
                    } else {
                        one.get_output_field(SAMPLE_ID)
                            .and_then(|f| f.as_varchar())
                            .map(|v| v.to_vec())
                    };
                    out.push((ids, scores, sids));
                }
                Ok(out)
            }
        })?;
        self.read_done(generation);
        let mut neighbors = Vec::new();
        for (ids, scores, sids) in hits {
            if ids.len() != scores.len() {
                return Err(malformed("search", "ids and scores differ in length"));
            }
            let sids = match sids {
                Some(s) if s.len() == ids.len() => s,
                _ if ids.is_empty() => Vec::new(),
                _ => return Err(malformed("search", "search hits lack sample ids")),
            };
            for ((key, score), sample_id) in ids.into_iter().zip(scores).zip(sids) {
                let distance = if negate {
                    // Scores are for -q: IP(-q, v) = -(q·v) is already the dotproduct distance;
                    // COSINE(-q, v) = -cos(q, v), so 1 - cos(q, v) = 1 + score.
                    match self.metric {
                        Metric::DotProduct => score,
                        Metric::Cosine => 1.0 + score,
                        Metric::Euclidean => distance_of(self.metric, score),
                    }
                } else {
                    distance_of(self.metric, score)
                };
                neighbors.push(Neighbor {
                    key,
                    sample_id,
                    distance,
                });
            }
        }
        Ok(neighbors)
    }

    /// ANN search restricted to `keys` (see the crate docs for the strategy).
    fn search_restricted(
        &self,
        q: &[f32],
        k: usize,
        keys: &[String],
        negate: bool,
    ) -> Result<Vec<Neighbor>> {
        let keys = dedup_keys(keys);
        if keys.len() > SMALL_VIEW {
            // Over-fetch: an unfiltered search deep enough to hold ~3k view members on average,
            // filtered here. Exact up to the ANN's own approximation: every view member closer
            // than the k-th one found ranks inside the fetched depth too.
            let size = self.size()?.max(1);
            let needed = (3 * k * size).div_ceil(keys.len()) + k;
            if needed <= MAX_K {
                let allowed: HashSet<&str> = keys.iter().map(String::as_str).collect();
                let hits: Vec<Neighbor> = self
                    .search(q.to_vec(), needed, None, negate)?
                    .into_iter()
                    .filter(|h| allowed.contains(h.key.as_str()))
                    .collect();
                if hits.len() >= k {
                    return Ok(hits);
                }
            }
        }
        // Filtered searches, at most RESTRICT_BATCH keys per `pk in [...]` expression.
        let mut all = Vec::new();
        for chunk in keys.chunks(RESTRICT_BATCH) {
            let limit = k.min(chunk.len());
            all.extend(self.search(q.to_vec(), limit, Some(in_filter(PK, chunk)), negate)?);
        }
        Ok(all)
    }

    /// Exact k-NN computed here over the candidates' stored vectors.
    fn exact_scan(
        &self,
        q: &[f32],
        k: Option<usize>,
        reverse: bool,
        restrict: Option<&[String]>,
    ) -> Result<Vec<Neighbor>> {
        let rows = match restrict {
            Some(keys) => {
                let keys = dedup_keys(keys);
                let mut found = self.fetch(&keys, true)?;
                let mut rows = Rows::default();
                for key in keys {
                    if let Some((sid, v)) = found.remove(&key) {
                        rows.pks.push(key);
                        rows.sample_ids.push(sid);
                        rows.vectors.push(v);
                    }
                }
                rows
            }
            None => self.scan_all(true)?,
        };
        let mut hits: Vec<Neighbor> = rows
            .pks
            .into_iter()
            .zip(rows.sample_ids)
            .zip(rows.vectors)
            .map(|((key, sample_id), v)| Neighbor {
                key,
                sample_id,
                distance: self.metric.reference_distance(q, &v) as f32,
            })
            .collect();
        sort_neighbors(&mut hits, reverse);
        if let Some(k) = k {
            hits.truncate(k);
        }
        Ok(hits)
    }

    /// Sends `batch` as upserts (or, with `insert`, plain inserts) of `batch_size` rows,
    /// `parallel_batches` in flight.
    fn send_rows(&self, batch: &Embeddings, insert_only: bool) -> Result<()> {
        let op = if insert_only { "insert" } else { "upsert" };
        let size = self.cfg.batch_size.max(1);
        let mut in_flight: VecDeque<tokio::task::JoinHandle<std::result::Result<(), SdkError>>> =
            VecDeque::new();
        let wait = |h: tokio::task::JoinHandle<std::result::Result<(), SdkError>>| -> Result<()> {
            match block_on(h) {
                Err(e) => Err(runtime_error(op, &self.cfg.connection.uri, e)),
                Ok(Err(join)) => Err(runtime_error(
                    op,
                    &self.cfg.connection.uri,
                    MilvusError::Runtime(join.to_string()),
                )),
                Ok(Ok(Err(e))) => Err(self.map_err(op, e)),
                Ok(Ok(Ok(()))) => Ok(()),
            }
        };
        let n = batch.len();
        let mut start = 0;
        while start < n {
            let end = (start + size).min(n);
            let keys = batch.keys()[start..end].to_vec();
            let sample_ids = batch.sample_ids()[start..end].to_vec();
            let vectors: Vec<Vec<f32>> = (start..end).map(|i| batch.row(i).to_vec()).collect();
            let insert = InsertRequest::builder()
                .collection_name(self.collection.clone())
                .columns(vec![
                    FieldData::VarChar {
                        name: PK.into(),
                        values: keys,
                    },
                    FieldData::FloatVector {
                        name: VECTOR.into(),
                        values: vectors,
                    },
                    FieldData::VarChar {
                        name: SAMPLE_ID.into(),
                        values: sample_ids,
                    },
                ])
                .build()
                .map_err(|e| self.map_err(op, e))?;
            let client = self.client.clone();
            let handle = if insert_only {
                crate::runtime::spawn(async move { client.insert(insert).await.map(|_| ()) })
            } else {
                let req = UpsertRequest::builder()
                    .insert(insert)
                    .build()
                    .map_err(|e| self.map_err(op, e))?;
                crate::runtime::spawn(async move { client.upsert(req).await.map(|_| ()) })
            }
            .map_err(|e| runtime_error(op, &self.cfg.connection.uri, e))?;
            in_flight.push_back(handle);
            if in_flight.len() >= self.cfg.parallel_batches.max(1) {
                if let Some(h) = in_flight.pop_front() {
                    if let Err(e) = wait(h) {
                        for rest in in_flight.drain(..) {
                            let _ = wait(rest);
                        }
                        return Err(e);
                    }
                }
            }
            start = end;
        }
        let mut first_err = None;
        for h in in_flight.drain(..) {
            if let Err(e) = wait(h) {
                first_err.get_or_insert(e);
            }
        }
        first_err.map_or(Ok(()), Err)
    }
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
        if batch.is_empty() {
            return Ok(());
        }
        self.ensure_collection(batch.dim())?;
        // Last row of a repeated key wins; copy only when there are repeats.
        let mut seen = HashSet::with_capacity(batch.len());
        let deduped;
        let batch = if batch.keys().iter().all(|k| seen.insert(k.as_str())) {
            batch
        } else {
            deduped = batch.clone().dedup_last_wins();
            &deduped
        };
        if self.pk_is_sample_id()
            && batch
                .keys()
                .iter()
                .zip(batch.sample_ids())
                .any(|(k, s)| k != s)
        {
            tracing::debug!(collection = %self.collection, "rows keyed by label ids: reading sample ids from the sample_id field");
            self.pk_is_sample_id.store(false, Ordering::SeqCst);
        }
        // While no one else can know the collection, a key this handle never wrote cannot be
        // stored: such rows are plain inserts (no delete half, so no delete records for the
        // server to apply to every later search). The lock is held for the whole write, so
        // two calls on this handle cannot both insert one key.
        let mut private = self.private();
        let Some(written) = private.as_mut() else {
            drop(private);
            return self.send_rows(batch, false);
        };
        let (new_rows, old_rows): (Vec<usize>, Vec<usize>) =
            (0..batch.len()).partition(|i| !written.contains(&batch.keys()[*i]));
        // Conservative: a key counts as written before its request is sent.
        written.extend(new_rows.iter().map(|i| batch.keys()[*i].clone()));
        let sent = if old_rows.is_empty() {
            self.send_rows(batch, true)
        } else if new_rows.is_empty() {
            self.send_rows(batch, false)
        } else {
            self.send_rows(&batch.select_rows(&new_rows), true)
                .and_then(|()| self.send_rows(&batch.select_rows(&old_rows), false))
        };
        if sent.is_err() || written.len() > PRIVATE_KEYS_MAX {
            // After a failed write the server state of those rows is unknown: upserts only.
            *private = None;
        }
        sent
    }

    fn remove(&self, keys: &[String]) -> Result<usize> {
        if keys.is_empty() || !self.lock().exists {
            return Ok(0);
        }
        let keys = dedup_keys(keys);
        let mut removed = 0;
        for chunk in keys.chunks(RESTRICT_BATCH) {
            let present: Vec<String> = self.fetch(chunk, false)?.into_keys().collect();
            if present.is_empty() {
                continue;
            }
            let req = DeleteRequest::builder()
                .collection_name(self.collection.clone())
                .filter(in_filter(PK, &present))
                .build()
                .map_err(|e| self.map_err("delete", e))?;
            let client = self.client.clone();
            self.call(
                "delete",
                async move { client.delete(req).await.map(|_| ()) },
            )?;
            self.deletes.fetch_add(1, Ordering::SeqCst);
            removed += present.len();
        }
        Ok(removed)
    }

    fn contains(&self, keys: &[String]) -> Result<Vec<bool>> {
        let found = self.fetch(keys, false)?;
        Ok(keys.iter().map(|k| found.contains_key(k)).collect())
    }

    fn get(&self, keys: &[String]) -> Result<Embeddings> {
        let found = self.fetch(keys, true)?;
        let mut rows = Rows::default();
        for k in keys {
            if let Some((sid, v)) = found.get(k) {
                rows.pks.push(k.clone());
                rows.sample_ids.push(sid.clone());
                rows.vectors.push(v.clone());
            }
        }
        self.rows_to_embeddings(rows)
    }

    fn get_by_sample_ids(&self, sample_ids: &[String]) -> Result<Embeddings> {
        if sample_ids.is_empty() || !self.lock().exists {
            return Ok(Embeddings::empty(self.dim_or_zero()));
        }
        let wanted = dedup_keys(sample_ids);
        let mut by_sample: HashMap<String, Vec<(String, Vec<f32>)>> = HashMap::new();
        // Patch indexes hold several rows per sample: ask for fewer samples per request.
        let per = (self.rows_per_response() / 4).max(1);
        for chunk in wanted.chunks(per) {
            let rows = self.query_rows(
                "get_by_sample_ids",
                // Sample indexes: the pk is the sample id, and pk filters use the pk index.
                in_filter(
                    if self.pk_is_sample_id() {
                        PK
                    } else {
                        SAMPLE_ID
                    },
                    chunk,
                ),
                &[PK, SAMPLE_ID, VECTOR],
                None,
            )?;
            if rows.vectors.len() != rows.pks.len() {
                return Err(malformed("get_by_sample_ids", "fewer vectors than keys"));
            }
            for ((pk, sid), v) in rows.pks.into_iter().zip(rows.sample_ids).zip(rows.vectors) {
                by_sample.entry(sid).or_default().push((pk, v));
            }
        }
        let mut rows = Rows::default();
        for sid in &wanted {
            if let Some(mut group) = by_sample.remove(sid) {
                group.sort_by(|a, b| a.0.cmp(&b.0));
                for (pk, v) in group {
                    rows.pks.push(pk);
                    rows.sample_ids.push(sid.clone());
                    rows.vectors.push(v);
                }
            }
        }
        self.rows_to_embeddings(rows)
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
        if !self.lock().exists {
            return Ok(0);
        }
        let (level, generation) = self.read_level();
        let req = QueryRequest::builder()
            .collection_name(self.collection.clone())
            .filter("")
            .output_fields(["count(*)"])
            .consistency_level(level)
            .build()
            .map_err(|e| self.map_err("count", e))?;
        let client = self.client.clone();
        let count = self.read_call("count", || {
            let client = client.clone();
            let req = req.clone();
            async move {
                let resp = client.query(req).await?;
                Ok(resp
                    .results()
                    .get_output_field("count(*)")
                    .and_then(|f| match f {
                        FieldData::Int64 { values, .. } => values.first().copied(),
                        _ => None,
                    }))
            }
        })?;
        self.read_done(generation);
        match count {
            Some(c) => Ok(c.max(0) as usize),
            None => Err(malformed("count", "no count(*) in the response")),
        }
    }

    fn knn(&self, query: &KnnQuery<'_>) -> Result<Vec<Neighbor>> {
        let q = query.vector;
        if q.is_empty() {
            return Err(Error::Empty("the query vector is empty"));
        }
        if q.iter().any(|v| !v.is_finite()) {
            return Err(Error::NonFinite {
                what: "of the query".into(),
            });
        }
        if let Some(k) = query.k {
            if k > MAX_K {
                return Err(Error::KTooLarge {
                    backend: BACKEND,
                    k,
                    max: MAX_K,
                });
            }
            if k == 0 {
                return Ok(Vec::new());
            }
        }
        let (exists, dim) = {
            let st = self.lock();
            (st.exists, st.dim)
        };
        let Some(dim) = dim.filter(|_| exists) else {
            return Ok(Vec::new());
        };
        if q.len() != dim {
            return Err(Error::DimensionMismatch {
                expected: dim,
                got: q.len(),
            });
        }
        if matches!(query.restrict, Some(r) if r.is_empty()) {
            return Ok(Vec::new());
        }
        let Some(k) = query.k else {
            return self.exact_scan(q, None, query.reverse, query.restrict);
        };
        if query.reverse && self.metric == Metric::Euclidean {
            return self.exact_scan(q, Some(k), true, query.restrict);
        }
        let negate = query.reverse;
        let qv: Vec<f32> = if negate {
            q.iter().map(|v| -v).collect()
        } else {
            q.to_vec()
        };
        let mut hits = match query.restrict {
            Some(keys) => self.search_restricted(&qv, k, keys, negate)?,
            None => self.search(qv, k, None, negate)?,
        };
        sort_neighbors(&mut hits, query.reverse);
        hits.truncate(k);
        Ok(hits)
    }

    fn persist(&self) -> Result<()> {
        if !self.cfg.flush_on_persist {
            return Ok(());
        }
        self.flush()
    }

    fn cleanup(&self) -> Result<()> {
        let req = DropCollectionRequest::builder()
            .collection_name(self.collection.clone())
            .build()
            .map_err(|e| self.map_err("drop_collection", e))?;
        let client = self.client.clone();
        match self.call("drop_collection", async move {
            client.drop_collection(req).await
        }) {
            Ok(()) | Err(Error::IndexMissing { .. }) => {}
            Err(e) => return Err(e),
        }
        let mut st = self.lock();
        st.exists = false;
        st.dim = None;
        Ok(())
    }

    fn created_storage(&self) -> bool {
        self.lock().created
    }

    fn persisted_config(&self) -> Map<String, Value> {
        // The name goes into a run record: other handles may write from now on.
        self.end_private();
        self.cfg.persisted(&self.collection, self.metric)
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(index_kind: IndexKind) -> SearchSpec<'static> {
        SearchSpec {
            collection: "c",
            metric: Metric::Cosine,
            index_kind,
            search_ef: 64,
            level: ConsistencyLevel::Session,
            with_sample_id: true,
        }
    }

    #[test]
    fn sample_indexes_search_without_output_fields() {
        let patches = spec(IndexKind::Flat)
            .request(vec![0.0; 4], 10, None)
            .unwrap();
        assert_eq!(patches.output_fields(), [SAMPLE_ID.to_string()]);
        let samples = SearchSpec {
            with_sample_id: false,
            ..spec(IndexKind::Flat)
        }
        .request(vec![0.0; 4], 10, None)
        .unwrap();
        assert!(samples.output_fields().is_empty());
    }

    #[test]
    fn hnsw_searches_send_ef_at_least_k() {
        let req = spec(IndexKind::Hnsw)
            .request(vec![0.0; 4], 10, None)
            .unwrap();
        assert_eq!(req.extra_params().get("ef").map(String::as_str), Some("64"));
        let req = spec(IndexKind::Hnsw)
            .request(vec![0.0; 4], 500, Some("pk in [\"a\"]".into()))
            .unwrap();
        assert_eq!(
            req.extra_params().get("ef").map(String::as_str),
            Some("500")
        );
        assert_eq!(req.filter(), "pk in [\"a\"]");
        let flat = spec(IndexKind::Flat)
            .request(vec![0.0; 4], 10, None)
            .unwrap();
        assert!(flat.extra_params().get("ef").is_none());
    }

    #[test]
    fn scores_become_contract_distances() {
        assert_eq!(distance_of(Metric::Cosine, 0.25), 0.75);
        assert_eq!(distance_of(Metric::DotProduct, 3.0), -3.0);
        assert_eq!(distance_of(Metric::Euclidean, 4.0), 2.0);
        assert_eq!(distance_of(Metric::Euclidean, -1e-7), 0.0);
        assert_eq!(
            metric_of(metric_type(Metric::DotProduct)),
            Some(Metric::DotProduct)
        );
    }
}
