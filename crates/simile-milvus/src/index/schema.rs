//! FiftyOne's collection schema (`pk` VARCHAR primary key, `vector` FLOAT_VECTOR, `sample_id`
//! VARCHAR): binding a handle to a collection name, creating the collection at the first
//! write, adopting one made elsewhere (schema, dimension and metric checked, a missing index
//! built), loading it, dropping it.
use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};

use milvus::v2::prelude::{
    CollectionSchema, CreateCollectionRequest, CreateIndexRequest, DataType,
    DescribeCollectionRequest, DescribeIndexRequest, DropCollectionRequest, FieldSchema,
    HasCollectionRequest, IndexParam, IndexType, LoadCollectionRequest, MetricType,
};
use simile_index::{Error, Metric, Result};

use super::call::SdkResult;
use super::MilvusIndex;
use crate::config::{collection_prefix, IndexKind};
use crate::conn::{classify, Kind};
use crate::BACKEND;

pub(super) const PK: &str = "pk";
pub(super) const VECTOR: &str = "vector";
pub(super) const SAMPLE_ID: &str = "sample_id";
const MAX_VARCHAR: u32 = 64000;
/// Index build and load can take minutes on large collections.
const LOAD_TIMEOUT_MS: i64 = 30 * 60 * 1000;

pub(super) fn metric_type(m: Metric) -> MetricType {
    match m {
        Metric::Cosine => MetricType::Cosine,
        Metric::DotProduct => MetricType::Ip,
        Metric::Euclidean => MetricType::L2,
    }
}

pub(super) fn metric_of(t: MetricType) -> Option<Metric> {
    match t {
        MetricType::Cosine => Some(Metric::Cosine),
        MetricType::Ip => Some(Metric::DotProduct),
        MetricType::L2 => Some(Metric::Euclidean),
        _ => None,
    }
}

/// Six random lower-case letters and digits, for generated collection names.
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

impl MilvusIndex {
    /// Binds the configured collection name (adopting the collection when it exists), or
    /// chooses a free `<prefix>_<random>` name for the dataset.
    pub(super) fn bind(&mut self, dataset_name: &str) -> Result<()> {
        match self.cfg.collection_name.clone() {
            Some(name) => {
                self.collection = name;
                if self.has_collection(&self.collection)? {
                    self.metric = self.adopt()?;
                }
            }
            None => {
                let prefix = collection_prefix(dataset_name);
                let mut name = format!("{prefix}_{}", random_suffix());
                while self.has_collection(&name)? {
                    name = format!("{prefix}_{}", random_suffix());
                }
                self.collection = name;
                self.auto_named = true;
            }
        }
        Ok(())
    }

    pub(super) fn has_collection(&self, name: &str) -> Result<bool> {
        let req = HasCollectionRequest::builder()
            .collection_name(name)
            .build();
        self.request("has_collection", req, |client, req| async move {
            client.has_collection(req).await.map(|r| r.exists())
        })
    }

    /// The request describing the collection's vector index.
    pub(super) fn describe_index_request(&self) -> SdkResult<DescribeIndexRequest> {
        DescribeIndexRequest::builder()
            .collection_name(self.collection.clone())
            .field_name(VECTOR)
            .build()
    }

    /// Takes on an existing collection: checks its schema, builds the vector index when it has
    /// none (with this handle's metric), loads it, and only then records that it exists and its
    /// dim. Returns the metric of its index; an error when the configured metric is another.
    fn adopt(&self) -> Result<Metric> {
        let dim = self.existing_dim()?;
        let req = self
            .describe_index_request()
            .map_err(|e| self.map_err("describe_index", e))?;
        let client = self.client.clone();
        let indexes = self.run(
            "describe_index",
            async move { client.describe_index(req).await },
        )?;
        let existing = match indexes {
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
        let metric = match (existing, self.cfg.metric) {
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
            (Some(have), _) => have,
            (None, _) => {
                self.create_vector_index()?;
                self.metric
            }
        };
        self.load()?;
        let mut st = self.lock();
        st.exists = true;
        st.dim = Some(dim);
        Ok(metric)
    }

    /// The vector dimension of the existing collection, after checking it has FiftyOne's
    /// schema.
    fn existing_dim(&self) -> Result<usize> {
        let req = DescribeCollectionRequest::builder()
            .collection_name(self.collection.clone())
            .build();
        let desc = self.request("describe_collection", req, |client, req| async move {
            client.describe_collection(req).await
        })?;
        let schema = desc.description().get_schema();
        let field = |name: &str| schema.get_fields().iter().find(|f| f.get_name() == name);
        let bad_schema = |reason: &str| {
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
            _ => return Err(bad_schema("no VARCHAR primary key 'pk'")),
        }
        let dim = match field(VECTOR) {
            Some(f) if f.get_data_type() == DataType::FloatVector => f.get_dimension() as usize,
            _ => return Err(bad_schema("no FLOAT_VECTOR field 'vector'")),
        };
        match field(SAMPLE_ID) {
            Some(f) if f.get_data_type() == DataType::VarChar => Ok(dim),
            _ => Err(bad_schema("no VARCHAR field 'sample_id'")),
        }
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
            .build();
        self.request("create_index", req, |client, req| async move {
            client.create_index(req).await
        })
    }

    pub(super) fn load(&self) -> Result<()> {
        let req = LoadCollectionRequest::builder()
            .collection_name(self.collection.clone())
            .sync(true)
            .timeout_ms(LOAD_TIMEOUT_MS)
            .build();
        self.request("load_collection", req, |client, req| async move {
            client.load_collection(req).await
        })
    }

    /// Creates the collection (FiftyOne's schema), its index, and loads it.
    fn create_collection(&self, dim: usize) -> Result<()> {
        let schema = CollectionSchema::new()
            .description(super::owner::owner_description(&self.storage_dir))
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
            .build();
        tracing::info!(collection = %self.collection, dim, metric = %self.metric, "creating Milvus collection");
        self.request("create_collection", req, |client, req| async move {
            client.create_collection(req).await
        })?;
        self.create_vector_index()?;
        self.load()
    }

    /// Makes sure the collection exists with vectors of `dim`: created here (starting the
    /// private insert path when the name was generated), or adopted when someone else created
    /// it (or dropped and recreated it) since this handle bound the name.
    pub(super) fn ensure_collection(&self, dim: usize) -> Result<()> {
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
            // Its metric must match the configured one; this handle keeps its own otherwise.
            self.adopt()?;
            let expected = self.dim_or_zero();
            if expected != dim {
                return Err(Error::DimensionMismatch { expected, got: dim });
            }
            return Ok(());
        }
        self.create_collection(dim)?;
        if self.auto_named {
            self.private.start();
        }
        let mut st = self.lock();
        st.exists = true;
        st.dim = Some(dim);
        st.created = true;
        Ok(())
    }

    /// Drops the collection (already gone is fine).
    pub(super) fn drop_collection(&self) -> Result<()> {
        let req = DropCollectionRequest::builder()
            .collection_name(self.collection.clone())
            .build();
        match self.request("drop_collection", req, |client, req| async move {
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_map_both_ways() {
        for m in [Metric::Cosine, Metric::DotProduct, Metric::Euclidean] {
            assert_eq!(metric_of(metric_type(m)), Some(m));
        }
    }

    #[test]
    fn generated_suffixes_are_short_and_safe() {
        let s = random_suffix();
        assert_eq!(s.len(), 6);
        assert!(s
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()));
    }
}
